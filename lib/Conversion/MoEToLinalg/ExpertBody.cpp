//===- ExpertBody.cpp - Applying one expert of moe.expert -------*- C++ -*-===//
//
// This file implements cloneExpertBody: the expert region with its block
// arguments bound to one expert's rows and weight slices.
//
//===----------------------------------------------------------------------===//

#include "ExpertBody.h"
#include "IntegerDotPanels.h"
#include "QuantizedPanels.h"

#include "moe/Dialect/MoE/Utils/WeightUses.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

/// Expert `expertIndex`'s slice ([1, ...] dropped) of an [E, ...] operand.
static Value sliceExpert(RewriterBase &rewriter, Location loc, Value operand,
                         Value expertIndex, RankedTensorType sliceType) {
  auto type = cast<RankedTensorType>(operand.getType());
  OpFoldResult zero = rewriter.getIndexAttr(0), one = rewriter.getIndexAttr(1);
  SmallVector<OpFoldResult> offsets(type.getRank(), zero);
  SmallVector<OpFoldResult> sizes = {one};
  SmallVector<OpFoldResult> strides(type.getRank(), one);
  offsets[0] = expertIndex;
  for (unsigned dim = 1; dim < type.getRank(); ++dim)
    sizes.push_back(tensor::getMixedSize(rewriter, loc, operand, dim));
  return tensor::ExtractSliceOp::create(rewriter, loc, sliceType, operand,
                                        offsets, sizes, strides);
}

SmallVector<Value> mlir::moe::detail::sliceExpertWeights(RewriterBase &rewriter,
                                                         ExpertOp expert,
                                                         Value expertIndex,
                                                         ValueRange weights) {
  Block &region = expert.getBody().front();
  SmallVector<Value> slices;
  for (auto [index, weight] : llvm::enumerate(weights)) {
    auto sliceType =
        cast<RankedTensorType>(region.getArgument(index + 1).getType());
    if (PackedWeightAttr packed = expert.getWeightLayout(index))
      sliceType = packed.getPackedSliceType(sliceType);
    slices.push_back(
        sliceExpert(rewriter, expert.getLoc(), weight, expertIndex, sliceType));
  }
  return slices;
}

SmallVector<Value> mlir::moe::detail::sliceExpertScales(RewriterBase &rewriter,
                                                        ExpertOp expert,
                                                        Value expertIndex,
                                                        ValueRange scales) {
  SmallVector<Value> slices;
  for (Value scale : scales) {
    auto type = cast<RankedTensorType>(scale.getType());
    auto sliceType = RankedTensorType::get(type.getShape().drop_front(),
                                           type.getElementType());
    slices.push_back(
        sliceExpert(rewriter, expert.getLoc(), scale, expertIndex, sliceType));
  }
  return slices;
}

/// The logical [K, N] matrix of a packed slice [ceil(N / P), K, P]: the
/// inverse of linalg.pack, lowered right away (transpose, collapse, slice),
/// widened to the logical element type where the panels store another, and
/// multiplied by its column scales where they are quantized.
static Value unpackSlice(RewriterBase &rewriter, Location loc, Value packed,
                         Value scales, PackedWeightAttr layout,
                         RankedTensorType logical) {
  if (layout.isNibbles())
    return unpackNibbleSlice(rewriter, loc,
                             layout.hasInt8Activations()
                                 ? deinterleaveNibbles(rewriter, loc, packed)
                                 : packed,
                             scales, layout, logical);
  Type stored = getElementTypeOrSelf(packed.getType());
  Value dest =
      tensor::EmptyOp::create(rewriter, loc, logical.getShape(), stored);
  auto unpack = linalg::UnPackOp::create(
      rewriter, loc, packed, dest, /*innerDimsPos=*/{1},
      /*innerTiles=*/{rewriter.getIndexAttr(layout.getPanel())},
      /*outerDimsPerm=*/{1, 0});
  FailureOr<linalg::LowerUnPackOpResult> lowered =
      linalg::lowerUnPack(rewriter, unpack);
  assert(succeeded(lowered) && "a static unpack always lowers");
  Value matrix = lowered->extractSliceOp ? lowered->extractSliceOp.getResult()
                                         : lowered->collapseShapeOp.getResult();
  Type element = logical.getElementType();
  if (stored == element)
    return matrix;
  Value init =
      tensor::EmptyOp::create(rewriter, loc, logical.getShape(), element);
  MLIRContext *context = rewriter.getContext();
  SmallVector<Value> inputs = {matrix};
  SmallVector<AffineMap> maps = {rewriter.getMultiDimIdentityMap(2)};
  if (scales) {
    inputs.push_back(
        scaleColumns(rewriter, loc, scales, Value(), logical.getDimSize(1)));
    maps.push_back(AffineMap::get(2, 0, getAffineDimExpr(1, context)));
  }
  maps.push_back(rewriter.getMultiDimIdentityMap(2));
  SmallVector<utils::IteratorType> iterators(2, utils::IteratorType::parallel);
  return linalg::GenericOp::create(
             rewriter, loc, logical, inputs, init, maps, iterators,
             [&](OpBuilder &b, Location l, ValueRange args) {
               if (!scales) {
                 linalg::YieldOp::create(
                     b, l,
                     ValueRange{arith::ExtFOp::create(b, l, element, args[0])});
                 return;
               }
               // One op per statement: their order must not depend on the
               // compiler's order of evaluating arguments.
               Value stored = arith::SIToFPOp::create(b, l, element, args[0]);
               Value scale = widenScale(b, l, args[1]);
               Value value = arith::MulFOp::create(b, l, stored, scale);
               linalg::YieldOp::create(b, l, value);
             })
      .getResult(0);
}

Value mlir::moe::detail::cloneExpertBodyOn(RewriterBase &rewriter,
                                           ExpertOp expert, Value rows,
                                           ValueRange weightSlices,
                                           ValueRange scaleSlices,
                                           const TileRows *tile) {
  bool markTile = tile != nullptr;
  Block &region = expert.getBody().front();
  IRMapping mapping;
  mapping.map(region.getArgument(0), rows);
  // Packed weights: the panel matmuls read the packed slice; every other
  // use reads the matrix unpacked once, before the body.
  struct PackedSlice {
    Value panels, scales;
    PackedWeightAttr layout;
  };
  DenseMap<Value, PackedSlice> packedArgs;
  unsigned nextScales = 0;
  for (auto [index, slice] : llvm::enumerate(weightSlices)) {
    BlockArgument arg = region.getArgument(index + 1);
    PackedWeightAttr layout = expert.getWeightLayout(index);
    if (!layout) {
      mapping.map(arg, slice);
      continue;
    }
    Value scales = layout.isQuantized() ? scaleSlices[nextScales++] : Value();
    packedArgs[arg] = {slice, scales, layout};
    if (!markTile || !hasOnlyPanelMatmulUses(arg))
      mapping.map(arg,
                  unpackSlice(rewriter, expert.getLoc(), slice, scales, layout,
                              cast<RankedTensorType>(arg.getType())));
  }
  DenseMap<Value, Value> blockedLhs;
  DenseMap<std::pair<Value, int64_t>, QuantizedRows> quantizedLhs;
  for (Operation &op : region.without_terminator()) {
    auto it = op.getNumOperands() >= 2 ? packedArgs.find(op.getOperand(1))
                                       : packedArgs.end();
    if (markTile && it != packedArgs.end() && isPanelMatmulOf(&op, it->first)) {
      auto matmul = cast<linalg::MatmulOp>(op);
      Value lhs = matmul.getDpsInputs()[0];
      PackedWeightAttr layout = it->second.layout;
      // Int8 rows are quantized once per group size for all their uses.
      std::optional<QuantizedRows> quantized;
      if (layout.hasInt8Activations()) {
        QuantizedRows &rows = quantizedLhs[{lhs, layout.getGroup()}];
        if (!rows.values)
          rows = quantizeRows(rewriter, op.getLoc(), mapping.lookup(lhs),
                              layout.getGroup());
        quantized = rows;
      }
      // The tile's rows come blocked from the gather; other left-hand
      // sides are blocked here, once for all their uses.
      Value &blocked = blockedLhs[lhs];
      if (!blocked)
        blocked =
            lhs == region.getArgument(0) && tile->blockedRows
                ? tile->blockedRows
                : blockRows(rewriter, op.getLoc(), mapping.lookup(lhs), *tile);
      Value result = emitPanelMatmul(
          rewriter, matmul, blocked, quantized ? &*quantized : nullptr,
          mapping.lookup(matmul.getDpsInits()[0]), it->second.panels,
          it->second.scales, layout, *tile);
      mapping.map(op.getResult(0), result);
      continue;
    }
    // A contraction by an int8-activations weight read unpacked multiplies
    // the values its int8 rows stand for, as the panels do.
    Value lhs, rowsAsRead;
    if (it != packedArgs.end() && isa<linalg::MatmulOp>(op) &&
        it->second.layout.hasInt8Activations()) {
      lhs = op.getOperand(0);
      rowsAsRead = mapping.lookup(lhs);
      mapping.map(lhs, fakeQuantizeRows(rewriter, op.getLoc(), rowsAsRead,
                                        it->second.layout.getGroup()));
    }
    Operation *clone = rewriter.clone(op, mapping);
    if (lhs)
      mapping.map(lhs, rowsAsRead);
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
                                         ValueRange scales) {
  SmallVector<Value> slices =
      sliceExpertWeights(rewriter, expert, expertIndex, weights);
  SmallVector<Value> scaleSlices =
      sliceExpertScales(rewriter, expert, expertIndex, scales);
  return cloneExpertBodyOn(rewriter, expert, rows, slices, scaleSlices);
}
