//===- QuantizedPanels.cpp - Scaled and 4-bit weight panels -----*- C++ -*-===//
//
// This file implements the pieces of the fused tiles that read quantized
// panels: a panel's sums times its scales, added to the result, and the
// 4-bit panels (two values per byte, a scale per group of rows), which are
// unpacked one group at a time into an int8 panel that the int8 tile
// contraction reads.
//
//===----------------------------------------------------------------------===//

#include "QuantizedPanels.h"

#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::moe;

Value mlir::moe::detail::addScaled(RewriterBase &rewriter, Location loc,
                                   Value sums, Value scales, Value out) {
  MLIRContext *context = rewriter.getContext();
  AffineMap identity = rewriter.getMultiDimIdentityMap(3);
  SmallVector<AffineMap> maps = {
      identity, AffineMap::get(3, 0, getAffineDimExpr(2, context)), identity};
  SmallVector<utils::IteratorType> iterators(3, utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      rewriter, loc, out.getType(), ValueRange{sums, scales}, out, maps,
      iterators, [](OpBuilder &b, Location l, ValueRange args) {
        Value scaled = arith::MulFOp::create(b, l, args[0], args[1]);
        linalg::YieldOp::create(
            b, l, ValueRange{arith::AddFOp::create(b, l, args[2], scaled)});
      });
  // (Left to LLVM's loop vectorizer: vectorized here, its broadcast scales
  // and the memref alias folding rewrite each other without end.)
  generic->setAttr(kExpertTileAttrName, rewriter.getUnitAttr());
  return generic.getResult(0);
}

/// The 4-bit value in the low (`high` false) or high nibble of byte `byte`,
/// sign-extended: (b << 4) >> 4 or b >> 4, arithmetic shifts.
static Value nibble(OpBuilder &b, Location loc, Value byte, Value high) {
  Value four = arith::ConstantIntOp::create(b, loc, b.getI8Type(), 4);
  Value low = arith::ShRSIOp::create(
      b, loc, arith::ShLIOp::create(b, loc, byte, four), four);
  Value upper = arith::ShRSIOp::create(b, loc, byte, four);
  return arith::SelectOp::create(b, loc, high, upper, low);
}

/// Whether iteration index `dim` (the half of a panel row) is the high one.
static Value isHighHalf(OpBuilder &b, Location loc, unsigned dim) {
  Value index = linalg::IndexOp::create(b, loc, dim);
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, index, zero);
}

Value mlir::moe::detail::unpackNibbleSlice(RewriterBase &rewriter, Location loc,
                                           Value packed, Value scales,
                                           PackedWeightAttr layout,
                                           RankedTensorType logical) {
  MLIRContext *context = rewriter.getContext();
  auto bytesType = cast<RankedTensorType>(packed.getType());
  int64_t panels = bytesType.getDimSize(0), depth = bytesType.getDimSize(1);
  int64_t half = bytesType.getDimSize(2), group = layout.getGroup();
  int64_t groups = depth / group, panel = layout.getPanel();
  Type f32 = logical.getElementType(), i8 = rewriter.getI8Type();
  // Over [P', K / G, G, 2, P / 2]: bytes [P', K / G, G, P / 2] and scales
  // [P', K / G, 2, P / 2], expanded; the values come out [P', K, P].
  Value bytes = tensor::ExpandShapeOp::create(
      rewriter, loc, RankedTensorType::get({panels, groups, group, half}, i8),
      packed, SmallVector<ReassociationIndices>{{0}, {1, 2}, {3}});
  Value halves = tensor::ExpandShapeOp::create(
      rewriter, loc, RankedTensorType::get({panels, groups, 2, half}, f32),
      scales, SmallVector<ReassociationIndices>{{0}, {1}, {2, 3}});
  AffineExpr p, g, k, h, j;
  bindDims(context, p, g, k, h, j);
  auto valuesType =
      RankedTensorType::get({panels, groups, group, 2, half}, f32);
  SmallVector<AffineMap> maps = {AffineMap::get(5, 0, {p, g, k, j}, context),
                                 AffineMap::get(5, 0, {p, g, h, j}, context),
                                 rewriter.getMultiDimIdentityMap(5)};
  Value values =
      linalg::GenericOp::create(
          rewriter, loc, valuesType, ValueRange{bytes, halves},
          ValueRange{tensor::EmptyOp::create(rewriter, loc,
                                             valuesType.getShape(), f32)},
          maps,
          SmallVector<utils::IteratorType>(5, utils::IteratorType::parallel),
          [&](OpBuilder &b, Location l, ValueRange args) {
            Value v = nibble(b, l, args[0], isHighHalf(b, l, 3));
            Value scaled = arith::MulFOp::create(
                b, l, arith::SIToFPOp::create(b, l, f32, v), args[1]);
            linalg::YieldOp::create(b, l, scaled);
          })
          .getResult(0);
  Value rows = tensor::CollapseShapeOp::create(
      rewriter, loc, values,
      SmallVector<ReassociationIndices>{{0}, {1, 2}, {3, 4}});
  // [P', K, P] -> [K, P', P] -> [K, P' * P] -> [K, N].
  Value transposed =
      linalg::TransposeOp::create(
          rewriter, loc, rows,
          tensor::EmptyOp::create(rewriter, loc,
                                  ArrayRef<int64_t>{depth, panels, panel}, f32),
          ArrayRef<int64_t>{1, 0, 2})
          .getResult()[0];
  Value matrix = tensor::CollapseShapeOp::create(
      rewriter, loc, transposed,
      SmallVector<ReassociationIndices>{{0}, {1, 2}});
  if (panels * panel == logical.getDimSize(1))
    return matrix;
  OpFoldResult zero = rewriter.getIndexAttr(0), one = rewriter.getIndexAttr(1);
  return tensor::ExtractSliceOp::create(
      rewriter, loc, logical, matrix, ArrayRef<OpFoldResult>{zero, zero},
      ArrayRef<OpFoldResult>{rewriter.getIndexAttr(depth),
                             rewriter.getIndexAttr(logical.getDimSize(1))},
      ArrayRef<OpFoldResult>{one, one});
}

/// Unpacks `bytes` ([G, P / 2]) into `panel` ([G, P] i8, destination
/// style: the same buffer every group): the low nibbles are its first
/// P / 2 columns, the high ones the rest. One elementwise op per half (no
/// select between them), each vectorized along the row.
static Value unpackGroup(OpBuilder &b, Location loc, Value bytes, Value panel) {
  auto type = cast<RankedTensorType>(bytes.getType());
  int64_t rows = type.getDimSize(0), half = type.getDimSize(1);
  AffineMap identity = b.getMultiDimIdentityMap(2);
  OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
  for (bool high : {false, true}) {
    SmallVector<OpFoldResult> offsets = {zero, b.getIndexAttr(high ? half : 0)};
    SmallVector<OpFoldResult> sizes = {b.getIndexAttr(rows),
                                       b.getIndexAttr(half)};
    SmallVector<OpFoldResult> strides = {one, one};
    Value dest = tensor::ExtractSliceOp::create(b, loc, type, panel, offsets,
                                                sizes, strides);
    auto generic = linalg::GenericOp::create(
        b, loc, type, bytes, dest, ArrayRef<AffineMap>{identity, identity},
        SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
        [&](OpBuilder &nb, Location l, ValueRange args) {
          Value four = arith::ConstantIntOp::create(nb, l, nb.getI8Type(), 4);
          Value byte = args[0];
          if (!high)
            byte = arith::ShLIOp::create(nb, l, byte, four);
          linalg::YieldOp::create(
              nb, l, ValueRange{arith::ShRSIOp::create(nb, l, byte, four)});
        });
    generic->setAttr(kPanelElementwiseAttrName, b.getUnitAttr());
    panel = tensor::InsertSliceOp::create(b, loc, generic.getResult(0), panel,
                                          offsets, sizes, strides);
  }
  return panel;
}

Value mlir::moe::detail::emitNibblePanel(RewriterBase &rewriter, Location loc,
                                         Value lhs, OpFoldResult blockCount,
                                         Value packed, Value scales,
                                         Value panel, PackedWeightAttr layout,
                                         Value out) {
  auto lhsType = cast<RankedTensorType>(lhs.getType());
  auto outType = cast<RankedTensorType>(out.getType());
  int64_t block = lhsType.getDimSize(2);
  int64_t depth = cast<RankedTensorType>(packed.getType()).getDimSize(1);
  int64_t group = layout.getGroup(), width = layout.getPanel();
  int64_t blockDim = outType.getDimSize(0);
  Type f32 = outType.getElementType(), i8 = rewriter.getI8Type();
  OpFoldResult zero = rewriter.getIndexAttr(0), one = rewriter.getIndexAttr(1);
  Value lower = arith::ConstantIndexOp::create(rewriter, loc, 0);
  Value upper = arith::ConstantIndexOp::create(rewriter, loc, depth / group);
  Value step = arith::ConstantIndexOp::create(rewriter, loc, 1);
  // The unpacked panel and the sums are buffers of the loop, reused by
  // every group (no allocation per group).
  Value panelBuffer = tensor::EmptyOp::create(
      rewriter, loc, ArrayRef<int64_t>{group, width}, i8);
  Value sumsBuffer = tensor::EmptyOp::create(
      rewriter, loc,
      ArrayRef<OpFoldResult>{blockCount, rewriter.getIndexAttr(block),
                             rewriter.getIndexAttr(width)},
      f32);
  auto loop = scf::ForOp::create(
      rewriter, loc, lower, upper, step,
      ValueRange{out, panelBuffer, sumsBuffer},
      [&](OpBuilder &b, Location l, Value g, ValueRange iterArgs) {
        Value row = arith::MulIOp::create(
            b, l, g, arith::ConstantIndexOp::create(b, l, group));
        Value rows = tensor::ExtractSliceOp::create(
            b, l,
            RankedTensorType::get({blockDim, group, block},
                                  lhsType.getElementType()),
            lhs, ArrayRef<OpFoldResult>{zero, row, zero},
            ArrayRef<OpFoldResult>{blockCount, b.getIndexAttr(group),
                                   b.getIndexAttr(block)},
            ArrayRef<OpFoldResult>{one, one, one});
        Value bytes = tensor::ExtractSliceOp::create(
            b, l, RankedTensorType::get({group, width / 2}, i8), packed,
            ArrayRef<OpFoldResult>{panel, row, zero},
            ArrayRef<OpFoldResult>{one, b.getIndexAttr(group),
                                   b.getIndexAttr(width / 2)},
            ArrayRef<OpFoldResult>{one, one, one});
        Value weights = unpackGroup(b, l, bytes, iterArgs[1]);
        Value groupScales = tensor::ExtractSliceOp::create(
            b, l, RankedTensorType::get({width}, f32), scales,
            ArrayRef<OpFoldResult>{panel, g, zero},
            ArrayRef<OpFoldResult>{one, one, b.getIndexAttr(width)},
            ArrayRef<OpFoldResult>{one, one, one});
        Value sums =
            linalg::FillOp::create(
                b, l,
                arith::ConstantOp::create(b, l, b.getZeroAttr(f32)).getResult(),
                ValueRange{iterArgs[2]})
                .getResult(0);
        MLIRContext *context = b.getContext();
        AffineExpr bi, m, n, k;
        bindDims(context, bi, m, n, k);
        auto product = linalg::BatchMatmulOp::create(b, l, TypeRange{outType},
                                                     ValueRange{rows, weights},
                                                     ValueRange{sums});
        product.setIndexingMapsAttr(b.getAffineMapArrayAttr(
            {AffineMap::get(4, 0, {bi, k, m}, context),
             AffineMap::get(4, 0, {k, n}, context),
             AffineMap::get(4, 0, {bi, m, n}, context)}));
        product->setAttr(kPackedPanelAttrName, b.getI64IntegerAttr(width));
        product->setAttr(kExpertTileAttrName, b.getUnitAttr());
        OpBuilder::InsertionGuard guard(rewriter);
        rewriter.setInsertionPoint(b.getInsertionBlock(),
                                   b.getInsertionPoint());
        Value next = addScaled(rewriter, l, product.getResult(0), groupScales,
                               iterArgs[0]);
        scf::YieldOp::create(b, l,
                             ValueRange{next, weights, product.getResult(0)});
      });
  return loop.getResult(0);
}
