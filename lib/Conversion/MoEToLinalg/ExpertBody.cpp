//===- ExpertBody.cpp - Applying one expert of moe.expert -------*- C++ -*-===//
//
// This file implements cloneExpertBody: the expert region with its block
// arguments bound to one expert's rows and weight slices.
//
//===----------------------------------------------------------------------===//

#include "ExpertBody.h"

#include "moe/Dialect/MoE/Utils/WeightUses.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"

using namespace mlir;
using namespace mlir::moe;

SmallVector<Value> mlir::moe::detail::sliceExpertWeights(RewriterBase &rewriter,
                                                         ExpertOp expert,
                                                         Value expertIndex,
                                                         ValueRange weights) {
  Location loc = expert.getLoc();
  Block &region = expert.getBody().front();
  OpFoldResult zero = rewriter.getIndexAttr(0), one = rewriter.getIndexAttr(1);
  SmallVector<Value> slices;
  for (auto [index, weight] : llvm::enumerate(weights)) {
    auto weightType = cast<RankedTensorType>(weight.getType());
    auto sliceType =
        cast<RankedTensorType>(region.getArgument(index + 1).getType());
    if (PackedWeightAttr packed = expert.getWeightLayout(index))
      sliceType = packed.getPackedSliceType(sliceType);
    SmallVector<OpFoldResult> offsets(weightType.getRank(), zero);
    SmallVector<OpFoldResult> sizes = {one};
    SmallVector<OpFoldResult> strides(weightType.getRank(), one);
    offsets[0] = expertIndex;
    for (unsigned dim = 1; dim < weightType.getRank(); ++dim)
      sizes.push_back(tensor::getMixedSize(rewriter, loc, weight, dim));
    slices.push_back(tensor::ExtractSliceOp::create(
        rewriter, loc, sliceType, weight, offsets, sizes, strides));
  }
  return slices;
}

/// The logical [K, N] matrix of a packed slice [ceil(N / P), K, P]: the
/// inverse of linalg.pack, lowered right away (transpose, collapse, slice).
static Value unpackSlice(RewriterBase &rewriter, Location loc, Value packed,
                         PackedWeightAttr layout, RankedTensorType logical) {
  Value dest = tensor::EmptyOp::create(rewriter, loc, logical.getShape(),
                                       logical.getElementType());
  auto unpack = linalg::UnPackOp::create(
      rewriter, loc, packed, dest, /*innerDimsPos=*/{1},
      /*innerTiles=*/{rewriter.getIndexAttr(layout.getPanel())},
      /*outerDimsPerm=*/{1, 0});
  FailureOr<linalg::LowerUnPackOpResult> lowered =
      linalg::lowerUnPack(rewriter, unpack);
  assert(succeeded(lowered) && "a static unpack always lowers");
  return lowered->extractSliceOp ? lowered->extractSliceOp.getResult()
                                 : lowered->collapseShapeOp.getResult();
}

/// Clones `matmul` (rows x W, W packed in `layout`) as a loop over W's
/// column panels, each a matmul of the rows by one [K, P] panel into P
/// columns of the result; returns the [M, N] result.
static Value emitPanelMatmul(RewriterBase &rewriter, linalg::MatmulOp matmul,
                             IRMapping &mapping, Value packed,
                             PackedWeightAttr layout) {
  Location loc = matmul.getLoc();
  Value lhs = mapping.lookup(matmul.getDpsInputs()[0]);
  Value init = mapping.lookup(matmul.getDpsInits()[0]);
  auto initType = cast<RankedTensorType>(init.getType());
  auto packedType = cast<RankedTensorType>(packed.getType());
  int64_t cols = initType.getDimSize(1);
  int64_t panels = packedType.getDimSize(0), depth = packedType.getDimSize(1);
  int64_t panel = layout.getPanel();
  OpFoldResult zero = rewriter.getIndexAttr(0), one = rewriter.getIndexAttr(1);
  OpFoldResult rows = tensor::getMixedSize(rewriter, loc, init, 0);
  Type elementType = initType.getElementType();
  // The last panel's columns past N hold zeros: the result is computed P
  // columns at a time and cut back to N.
  Value acc = init;
  if (panels * panel != cols) {
    Value padValue = arith::ConstantOp::create(
        rewriter, loc, rewriter.getZeroAttr(elementType));
    acc = tensor::PadOp::create(
        rewriter, loc,
        RankedTensorType::get({initType.getDimSize(0), panels * panel},
                              elementType),
        init, ArrayRef<OpFoldResult>{zero, zero},
        ArrayRef<OpFoldResult>{zero,
                               rewriter.getIndexAttr(panels * panel - cols)},
        padValue);
  }
  auto panelType =
      RankedTensorType::get({depth, panel}, packedType.getElementType());
  auto outType =
      RankedTensorType::get({initType.getDimSize(0), panel}, elementType);
  // The panels all read the rows' tile: transposed once, so that a
  // reduction step of the micro-kernel reads its rows' values contiguously.
  auto lhsType = cast<RankedTensorType>(lhs.getType());
  Value lhsInit = tensor::EmptyOp::create(
      rewriter, loc,
      ArrayRef<OpFoldResult>{tensor::getMixedSize(rewriter, loc, lhs, 1), rows},
      lhsType.getElementType());
  Value lhsT = linalg::TransposeOp::create(rewriter, loc, lhs, lhsInit, {1, 0})
                   .getResult()[0];
  MLIRContext *context = rewriter.getContext();
  AffineExpr m, n, k;
  bindDims(context, m, n, k);
  auto maps =
      rewriter.getAffineMapArrayAttr({AffineMap::get(3, 0, {k, m}, context),
                                      AffineMap::get(3, 0, {k, n}, context),
                                      AffineMap::get(3, 0, {m, n}, context)});
  auto loop = scf::ForallOp::create(
      rewriter, loc, ArrayRef<OpFoldResult>{rewriter.getIndexAttr(panels)},
      ValueRange{acc}, std::nullopt);
  {
    OpBuilder::InsertionGuard guard(rewriter);
    Block *body = loop.getBody();
    rewriter.setInsertionPointToStart(body);
    Value j = body->getArgument(0);
    Value shared = body->getArgument(1);
    Value col = arith::MulIOp::create(
        rewriter, loc, j, arith::ConstantIndexOp::create(rewriter, loc, panel));
    Value weights = tensor::ExtractSliceOp::create(
        rewriter, loc, panelType, packed, ArrayRef<OpFoldResult>{j, zero, zero},
        ArrayRef<OpFoldResult>{one, rewriter.getIndexAttr(depth),
                               rewriter.getIndexAttr(panel)},
        ArrayRef<OpFoldResult>{one, one, one});
    SmallVector<OpFoldResult> outOffsets = {zero, col};
    SmallVector<OpFoldResult> outSizes = {rows, rewriter.getIndexAttr(panel)};
    SmallVector<OpFoldResult> outStrides = {one, one};
    Value out = tensor::ExtractSliceOp::create(
        rewriter, loc, outType, shared, outOffsets, outSizes, outStrides);
    IRMapping panelMapping;
    panelMapping.map(matmul.getDpsInputs()[0], lhsT);
    panelMapping.map(matmul.getDpsInputs()[1], weights);
    panelMapping.map(matmul.getDpsInits()[0], out);
    Operation *clone = rewriter.clone(*matmul, panelMapping);
    clone->getResult(0).setType(outType);
    cast<linalg::MatmulOp>(clone).setIndexingMapsAttr(maps);
    clone->setAttr(kPackedPanelAttrName, rewriter.getI64IntegerAttr(panel));
    clone->setAttr(kExpertTileAttrName, rewriter.getUnitAttr());
    rewriter.setInsertionPointToStart(loop.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(rewriter, loc, clone->getResult(0),
                                          shared, outOffsets, outSizes,
                                          outStrides);
  }
  Value result = loop.getResult(0);
  if (panels * panel != cols)
    result = tensor::ExtractSliceOp::create(
        rewriter, loc, initType, result, ArrayRef<OpFoldResult>{zero, zero},
        ArrayRef<OpFoldResult>{rows, rewriter.getIndexAttr(cols)},
        ArrayRef<OpFoldResult>{one, one});
  return result;
}

Value mlir::moe::detail::cloneExpertBodyOn(RewriterBase &rewriter,
                                           ExpertOp expert, Value rows,
                                           ValueRange weightSlices,
                                           bool markTile) {
  Block &region = expert.getBody().front();
  IRMapping mapping;
  mapping.map(region.getArgument(0), rows);
  // Packed weights: the panel matmuls read the packed slice; every other
  // use reads the matrix unpacked once, before the body.
  DenseMap<Value, std::pair<Value, PackedWeightAttr>> packedArgs;
  for (auto [index, slice] : llvm::enumerate(weightSlices)) {
    BlockArgument arg = region.getArgument(index + 1);
    PackedWeightAttr layout = expert.getWeightLayout(index);
    if (!layout) {
      mapping.map(arg, slice);
      continue;
    }
    packedArgs[arg] = {slice, layout};
    if (!markTile || !hasOnlyPanelMatmulUses(arg))
      mapping.map(arg, unpackSlice(rewriter, expert.getLoc(), slice, layout,
                                   cast<RankedTensorType>(arg.getType())));
  }
  for (Operation &op : region.without_terminator()) {
    if (markTile && op.getNumOperands() >= 2) {
      auto it = packedArgs.find(op.getOperand(1));
      if (it != packedArgs.end() && isPanelMatmulOf(&op, it->first)) {
        Value result =
            emitPanelMatmul(rewriter, cast<linalg::MatmulOp>(op), mapping,
                            it->second.first, it->second.second);
        mapping.map(op.getResult(0), result);
        continue;
      }
    }
    Operation *clone = rewriter.clone(op, mapping);
    if (markTile)
      clone->walk([&](Operation *nested) {
        if (isa<linalg::LinalgOp>(nested))
          nested->setAttr(kExpertTileAttrName, rewriter.getUnitAttr());
      });
  }
  return mapping.lookup(expert.getYieldedValue());
}

Value mlir::moe::detail::cloneExpertBody(RewriterBase &rewriter,
                                         ExpertOp expert, Value rows,
                                         Value expertIndex, ValueRange weights,
                                         bool markTile) {
  SmallVector<Value> slices =
      sliceExpertWeights(rewriter, expert, expertIndex, weights);
  return cloneExpertBodyOn(rewriter, expert, rows, slices, markTile);
}
