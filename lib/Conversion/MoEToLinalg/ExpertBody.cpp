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
#include "mlir/Dialect/SCF/IR/SCF.h"
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

/// A panel's scales [P] (`scales` is [ceil(N / P), P]), or the first N of
/// them ([N]) when `panel` is null.
static Value scaleColumns(RewriterBase &rewriter, Location loc, Value scales,
                          Value panel, int64_t columns) {
  auto type = cast<RankedTensorType>(scales.getType());
  int64_t width = type.getDimSize(1);
  OpFoldResult zero = rewriter.getIndexAttr(0), one = rewriter.getIndexAttr(1);
  if (panel)
    return tensor::ExtractSliceOp::create(
        rewriter, loc, RankedTensorType::get({width}, type.getElementType()),
        scales, ArrayRef<OpFoldResult>{panel, zero},
        ArrayRef<OpFoldResult>{one, rewriter.getIndexAttr(width)},
        ArrayRef<OpFoldResult>{one, one});
  Value flat = tensor::CollapseShapeOp::create(
      rewriter, loc, scales, SmallVector<ReassociationIndices>{{0, 1}});
  return tensor::ExtractSliceOp::create(
      rewriter, loc, RankedTensorType::get({columns}, type.getElementType()),
      flat, ArrayRef<OpFoldResult>{zero},
      ArrayRef<OpFoldResult>{rewriter.getIndexAttr(columns)},
      ArrayRef<OpFoldResult>{one});
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
               Value value =
                   scales ? arith::MulFOp::create(
                                b, l,
                                arith::SIToFPOp::create(b, l, element, args[0]),
                                args[1])
                                .getResult()
                          : arith::ExtFOp::create(b, l, element, args[0])
                                .getResult();
               linalg::YieldOp::create(b, l, value);
             })
      .getResult(0);
}

/// `lhs` ([M, K] rows of the tile) in blocks of M0 rows, each stored
/// [K, M0]: linalg.pack, lowered right away (expand and transpose).
static Value blockRows(RewriterBase &rewriter, Location loc, Value lhs,
                       const TileRows &tile) {
  auto type = cast<RankedTensorType>(lhs.getType());
  int64_t depth = type.getDimSize(1), block = tile.rowBlock;
  Type elementType = type.getElementType();
  if (tile.activeBlocks) {
    // The active rows only: [blocks * M0, K] -> [blocks, M0, K] ->
    // [blocks, K, M0], what linalg.pack lowers to for a static count.
    OpFoldResult blocks = tile.activeBlocks;
    auto expanded = tensor::ExpandShapeOp::create(
        rewriter, loc,
        RankedTensorType::get({ShapedType::kDynamic, block, depth},
                              elementType),
        lhs, SmallVector<ReassociationIndices>{{0, 1}, {2}},
        ArrayRef<OpFoldResult>{blocks, rewriter.getIndexAttr(block),
                               rewriter.getIndexAttr(depth)});
    Value dest = tensor::EmptyOp::create(
        rewriter, loc,
        ArrayRef<OpFoldResult>{blocks, rewriter.getIndexAttr(depth),
                               rewriter.getIndexAttr(block)},
        elementType);
    return linalg::TransposeOp::create(rewriter, loc, expanded, dest,
                                       ArrayRef<int64_t>{0, 2, 1})
        .getResult()[0];
  }
  lhs = tensor::CastOp::create(
      rewriter, loc, RankedTensorType::get({tile.rows, depth}, elementType),
      lhs);
  Value dest = tensor::EmptyOp::create(
      rewriter, loc, ArrayRef<int64_t>{tile.rows / block, depth, block},
      elementType);
  auto pack = linalg::PackOp::create(rewriter, loc, lhs, dest,
                                     /*innerDimsPos=*/{0},
                                     /*innerTiles=*/
                                     {rewriter.getIndexAttr(block)},
                                     /*paddingValue=*/std::nullopt,
                                     /*outerDimsPerm=*/{});
  FailureOr<linalg::LowerPackResult> lowered =
      linalg::lowerPack(rewriter, pack, /*lowerPadLikeWithInsertSlice=*/false);
  assert(succeeded(lowered) && "a static pack always lowers");
  return lowered->transposeOp.getResult()[0];
}

/// Clones `matmul` (rows x W, W packed in `layout`) as a loop over W's
/// column panels; returns the [M, N] result. Each panel is one
/// linalg.batch_matmul over the row blocks of the left-hand side (`lhs`,
/// blocked) into P columns of the result, which keeps its [M, N] layout:
/// [M / M0, M0, P] is a panel's column slice of it, expanded.
static Value emitPanelMatmul(RewriterBase &rewriter, linalg::MatmulOp matmul,
                             Value lhs, const QuantizedRows *quantized,
                             Value init, Value packed, Value scales,
                             PackedWeightAttr layout, const TileRows &tile) {
  Location loc = matmul.getLoc();
  auto initType = cast<RankedTensorType>(init.getType());
  auto packedType = cast<RankedTensorType>(packed.getType());
  int64_t rows = tile.rows, block = tile.rowBlock;
  int64_t cols = initType.getDimSize(1);
  // The rows: the tile's static M, or the active blocks' (a dynamic count).
  bool activeOnly = static_cast<bool>(tile.activeBlocks);
  int64_t rowDim = activeOnly ? ShapedType::kDynamic : rows;
  int64_t blockDim = activeOnly ? ShapedType::kDynamic : rows / block;
  OpFoldResult rowCount = rewriter.getIndexAttr(rows);
  OpFoldResult blockCount = rewriter.getIndexAttr(rows / block);
  if (activeOnly) {
    blockCount = tile.activeBlocks;
    rowCount = arith::MulIOp::create(
                   rewriter, loc, tile.activeBlocks,
                   arith::ConstantIndexOp::create(rewriter, loc, block))
                   .getResult();
  }
  int64_t panels = packedType.getDimSize(0), depth = packedType.getDimSize(1);
  int64_t panel = layout.getPanel();
  Type elementType = initType.getElementType();
  OpFoldResult zero = rewriter.getIndexAttr(0), one = rewriter.getIndexAttr(1);
  // (The body may say `?` for a static M.) The last panel's columns past N
  // hold zeros: the result is computed P columns at a time and cut back to
  // N.
  Value acc = tensor::CastOp::create(
      rewriter, loc, RankedTensorType::get({rowDim, cols}, elementType), init);
  if (panels * panel != cols) {
    Value padValue = arith::ConstantOp::create(
        rewriter, loc, rewriter.getZeroAttr(elementType));
    acc = tensor::PadOp::create(
        rewriter, loc,
        RankedTensorType::get({rowDim, panels * panel}, elementType), acc,
        ArrayRef<OpFoldResult>{zero, zero},
        ArrayRef<OpFoldResult>{zero,
                               rewriter.getIndexAttr(panels * panel - cols)},
        padValue);
  }
  auto panelType =
      RankedTensorType::get({depth, panel}, packedType.getElementType());
  auto outType = RankedTensorType::get({rowDim, panel}, elementType);
  auto blockedOutType =
      RankedTensorType::get({blockDim, block, panel}, elementType);
  SmallVector<ReassociationIndices> blocks = {{0, 1}, {2}};
  MLIRContext *context = rewriter.getContext();
  AffineExpr b, m, n, k;
  bindDims(context, b, m, n, k);
  SmallVector<AffineMap> maps = {AffineMap::get(4, 0, {b, k, m}, context),
                                 AffineMap::get(4, 0, {k, n}, context),
                                 AffineMap::get(4, 0, {b, m, n}, context)};
  // Only the active blocks are multiplied (the gather's blocked rows hold
  // M / M0 blocks).
  if (activeOnly)
    lhs = tensor::ExtractSliceOp::create(
        rewriter, loc, lhs, ArrayRef<OpFoldResult>{zero, zero, zero},
        ArrayRef<OpFoldResult>{tile.activeBlocks, rewriter.getIndexAttr(depth),
                               rewriter.getIndexAttr(block)},
        ArrayRef<OpFoldResult>{one, one, one});
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
    // (4-bit panels are read a group at a time, below.)
    Value weights;
    if (!layout.isNibbles())
      weights = tensor::ExtractSliceOp::create(
          rewriter, loc, panelType, packed,
          ArrayRef<OpFoldResult>{j, zero, zero},
          ArrayRef<OpFoldResult>{one, rewriter.getIndexAttr(depth),
                                 rewriter.getIndexAttr(panel)},
          ArrayRef<OpFoldResult>{one, one, one});
    SmallVector<OpFoldResult> outOffsets = {zero, col};
    SmallVector<OpFoldResult> outSizes = {rowCount,
                                          rewriter.getIndexAttr(panel)};
    SmallVector<OpFoldResult> outStrides = {one, one};
    // The panel accumulates in a buffer of its own, copied into the result
    // at the end: the result's rows are N apart (a page or more), where each
    // reduction block would reload its accumulators through the TLB. (No
    // view of that buffer either: the codegen keeps accumulators in
    // registers only for buffers without views.)
    Value out = tensor::ExtractSliceOp::create(
        rewriter, loc, outType, shared, outOffsets, outSizes, outStrides);
    SmallVector<OpFoldResult> activeSizes = {
        blockCount, rewriter.getIndexAttr(block), rewriter.getIndexAttr(panel)};
    Value activeOut = tensor::ExpandShapeOp::create(
        rewriter, loc, blockedOutType, out, blocks, activeSizes);
    Value copied;
    if (quantized) {
      // Int8 rows times 4-bit codes (IntegerDotPanels.cpp), every tile size.
      copied = emitIntegerDotPanel(rewriter, loc, *quantized, blockCount,
                                   packed, scales, j, layout, activeOut);
    } else if (layout.isNibbles()) {
      // 4-bit panels (QuantizedPanels.cpp): decode tiles convert each
      // weight for a few rows, one group at a time; larger tiles dequantize
      // blocks of the panel once for all their rows.
      copied =
          rows > kFewTileRows
              ? emitDequantizedNibblePanel(rewriter, loc, lhs, blockCount,
                                           packed, scales, j, layout, activeOut)
              : emitNibblePanel(rewriter, loc, lhs, blockCount, packed, scales,
                                j, layout, activeOut);
    } else {
      auto activeType = cast<RankedTensorType>(activeOut.getType());
      Value local =
          tensor::EmptyOp::create(rewriter, loc, activeSizes, elementType);
      Value localInit;
      auto fill = init.getDefiningOp<linalg::FillOp>();
      if (scales)
        // Quantized: the panel sums x * q from zero; its scales multiply the
        // sums once, as they are added to the result.
        localInit = linalg::FillOp::create(
                        rewriter, loc,
                        arith::ConstantOp::create(
                            rewriter, loc, rewriter.getZeroAttr(elementType))
                            .getResult(),
                        local)
                        .getResult(0);
      else if (fill)
        localInit =
            linalg::FillOp::create(rewriter, loc, fill.getInputs()[0], local)
                .getResult(0);
      else
        localInit = linalg::CopyOp::create(rewriter, loc, activeOut, local)
                        .getResult(0);
      // (The body's element casts carry over: the region is built from them.)
      SmallVector<NamedAttribute> castAttr;
      if (matmul.getCast() != linalg::TypeFn::cast_signed)
        castAttr.push_back(rewriter.getNamedAttr(
            "cast", linalg::TypeFnAttr::get(context, matmul.getCast())));
      auto product = linalg::BatchMatmulOp::create(
          rewriter, loc, TypeRange{activeType}, ValueRange{lhs, weights},
          ValueRange{localInit}, castAttr);
      product.setIndexingMapsAttr(rewriter.getAffineMapArrayAttr(maps));
      product->setAttr(kPackedPanelAttrName, rewriter.getI64IntegerAttr(panel));
      product->setAttr(kExpertTileAttrName, rewriter.getUnitAttr());
      copied = scales ? addScaled(rewriter, loc, product.getResult(0),
                                  scaleColumns(rewriter, loc, scales, j, cols),
                                  activeOut)
                      : linalg::CopyOp::create(rewriter, loc,
                                               product.getResult(0), activeOut)
                            .getResult(0);
    }
    Value result =
        tensor::CollapseShapeOp::create(rewriter, loc, outType, copied, blocks);
    rewriter.setInsertionPointToStart(loop.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(rewriter, loc, result, shared,
                                          outOffsets, outSizes, outStrides);
  }
  Value result = loop.getResult(0);
  if (panels * panel != cols)
    result = tensor::ExtractSliceOp::create(
        rewriter, loc, RankedTensorType::get({rowDim, cols}, elementType),
        result, ArrayRef<OpFoldResult>{zero, zero},
        ArrayRef<OpFoldResult>{rowCount, rewriter.getIndexAttr(cols)},
        ArrayRef<OpFoldResult>{one, one});
  return tensor::CastOp::create(rewriter, loc, matmul.getResult(0).getType(),
                                result);
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
