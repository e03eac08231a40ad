//===- PanelMatmul.cpp - Contractions by packed weight panels ---*- C++ -*-===//
//
// This file implements the fused tiles' contractions by packed expert
// weights (#moe.packed): a loop over the column panels, each a contraction
// of the tile's row blocks by one panel (f32, bf16, int8, 4-bit, or int8
// rows by 4-bit codes), added into the result's columns.
//
//===----------------------------------------------------------------------===//

#include "ExpertBody.h"
#include "IntegerDotPanels.h"
#include "QuantizedPanels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

/// A panel's scales [P] (`scales` is [ceil(N / P), P]), or the first N of
/// them ([N]) when `panel` is null.
Value mlir::moe::detail::scaleColumns(RewriterBase &rewriter, Location loc,
                                      Value scales, Value panel,
                                      int64_t columns) {
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

/// `lhs` ([M, K] rows of the tile) in blocks of M0 rows, each stored
/// [K, M0]: linalg.pack, lowered right away (expand and transpose).
Value mlir::moe::detail::blockRows(RewriterBase &rewriter, Location loc,
                                   Value lhs, const TileRows &tile) {
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
Value mlir::moe::detail::emitPanelMatmul(RewriterBase &rewriter,
                                         linalg::MatmulOp matmul, Value lhs,
                                         const QuantizedRows *quantized,
                                         Value init, Value packed, Value scales,
                                         PackedWeightAttr layout,
                                         const TileRows &tile) {
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
