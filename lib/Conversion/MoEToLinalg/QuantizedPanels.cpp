//===- QuantizedPanels.cpp - Scaled and 4-bit weight panels -----*- C++ -*-===//
//
// This file implements the pieces of the fused tiles that read quantized
// panels: a panel's sums times its scales, added to the result, and the
// 4-bit panels (two values per byte, a scale per group of rows): decode
// tiles unpack them one group at a time into an int8 panel that the int8
// tile contraction reads; larger tiles dequantize blocks of rows to f32 once
// for all their rows.
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
using namespace mlir::moe::detail;

Type mlir::moe::detail::scaleElementType(Value scales) {
  return cast<ShapedType>(scales.getType()).getElementType();
}

Value mlir::moe::detail::widenScale(OpBuilder &b, Location loc, Value scale) {
  if (scale.getType().isF32())
    return scale;
  return arith::ExtFOp::create(b, loc, b.getF32Type(), scale);
}

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
        Value scaled =
            arith::MulFOp::create(b, l, args[0], widenScale(b, l, args[1]));
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
      rewriter, loc,
      RankedTensorType::get({panels, groups, 2, half},
                            scaleElementType(scales)),
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
            // (One op per statement: the order of the ops must not
            // depend on the compiler's order of evaluating arguments.)
            Value value = arith::SIToFPOp::create(b, l, f32, v);
            Value scale = widenScale(b, l, args[1]);
            Value scaled = arith::MulFOp::create(b, l, value, scale);
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

/// Rows `row`.. (`count` of them) of a tile's packed panel `panel`: the
/// left-hand side's ([blocks, count, M0], the first `blockCount` blocks;
/// `blockDim` their static count or dynamic) and the panel's bytes
/// ([count, P / 2]).
static std::pair<Value, Value> sliceRows(OpBuilder &b, Location loc, Value lhs,
                                         OpFoldResult blockCount,
                                         int64_t blockDim, Value packed,
                                         Value panel, Value row, int64_t count,
                                         int64_t width) {
  auto lhsType = cast<RankedTensorType>(lhs.getType());
  int64_t block = lhsType.getDimSize(2);
  OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
  Value rows = tensor::ExtractSliceOp::create(
      b, loc,
      RankedTensorType::get({blockDim, count, block}, lhsType.getElementType()),
      lhs, ArrayRef<OpFoldResult>{zero, row, zero},
      ArrayRef<OpFoldResult>{blockCount, b.getIndexAttr(count),
                             b.getIndexAttr(block)},
      ArrayRef<OpFoldResult>{one, one, one});
  Value bytes = tensor::ExtractSliceOp::create(
      b, loc, RankedTensorType::get({count, width / 2}, b.getI8Type()), packed,
      ArrayRef<OpFoldResult>{panel, row, zero},
      ArrayRef<OpFoldResult>{one, b.getIndexAttr(count),
                             b.getIndexAttr(width / 2)},
      ArrayRef<OpFoldResult>{one, one, one});
  return {rows, bytes};
}

/// The sizes of a tile's 4-bit panel contraction: M0, K, G, P and the
/// static count of row blocks (or dynamic).
struct PanelSizes {
  int64_t block, depth, group, width, blockDim;
  static PanelSizes of(Value lhs, Value packed, PackedWeightAttr layout,
                       Value out) {
    return {cast<RankedTensorType>(lhs.getType()).getDimSize(2),
            cast<RankedTensorType>(packed.getType()).getDimSize(1),
            layout.getGroup(), layout.getPanel(),
            cast<RankedTensorType>(out.getType()).getDimSize(0)};
  }
};

/// A [blockCount, block, width] f32 tensor for a panel's sums.
static Value emptySums(OpBuilder &b, Location loc, OpFoldResult blockCount,
                       int64_t block, int64_t width) {
  return tensor::EmptyOp::create(b, loc,
                                 ArrayRef<OpFoldResult>{blockCount,
                                                        b.getIndexAttr(block),
                                                        b.getIndexAttr(width)},
                                 b.getF32Type());
}

/// `init + rows x weights` for one panel: rows [blocks, K, M0], weights
/// [K, P], init [blocks, M0, P] (marked for the panel codegen).
static Value panelProduct(OpBuilder &b, Location loc, Value rows, Value weights,
                          Value init, int64_t width) {
  MLIRContext *context = b.getContext();
  AffineExpr bi, m, n, k;
  bindDims(context, bi, m, n, k);
  auto product = linalg::BatchMatmulOp::create(
      b, loc, TypeRange{init.getType()}, ValueRange{rows, weights},
      ValueRange{init});
  product.setIndexingMapsAttr(
      b.getAffineMapArrayAttr({AffineMap::get(4, 0, {bi, k, m}, context),
                               AffineMap::get(4, 0, {k, n}, context),
                               AffineMap::get(4, 0, {bi, m, n}, context)}));
  product->setAttr(kPackedPanelAttrName, b.getI64IntegerAttr(width));
  product->setAttr(kExpertTileAttrName, b.getUnitAttr());
  return product.getResult(0);
}

Value mlir::moe::detail::emitNibblePanel(RewriterBase &rewriter, Location loc,
                                         Value lhs, OpFoldResult blockCount,
                                         Value packed, Value scales,
                                         Value panel, PackedWeightAttr layout,
                                         Value out) {
  PanelSizes sizes = PanelSizes::of(lhs, packed, layout, out);
  int64_t block = sizes.block, depth = sizes.depth, group = sizes.group;
  int64_t width = sizes.width, blockDim = sizes.blockDim;
  Type f32 = rewriter.getF32Type(), i8 = rewriter.getI8Type();
  OpFoldResult zero = rewriter.getIndexAttr(0), one = rewriter.getIndexAttr(1);
  Value lower = arith::ConstantIndexOp::create(rewriter, loc, 0);
  Value upper = arith::ConstantIndexOp::create(rewriter, loc, depth / group);
  Value step = arith::ConstantIndexOp::create(rewriter, loc, 1);
  // The unpacked panel and the sums are buffers of the loop, reused by
  // every group (no allocation per group).
  Value panelBuffer = tensor::EmptyOp::create(
      rewriter, loc, ArrayRef<int64_t>{group, width}, i8);
  Value sumsBuffer = emptySums(rewriter, loc, blockCount, block, width);
  auto loop = scf::ForOp::create(
      rewriter, loc, lower, upper, step,
      ValueRange{out, panelBuffer, sumsBuffer},
      [&](OpBuilder &b, Location l, Value g, ValueRange iterArgs) {
        Value row = arith::MulIOp::create(
            b, l, g, arith::ConstantIndexOp::create(b, l, group));
        auto [rows, bytes] = sliceRows(b, l, lhs, blockCount, blockDim, packed,
                                       panel, row, group, width);
        Value weights = unpackGroup(b, l, bytes, iterArgs[1]);
        Value groupScales = tensor::ExtractSliceOp::create(
            b, l, RankedTensorType::get({width}, scaleElementType(scales)),
            scales, ArrayRef<OpFoldResult>{panel, g, zero},
            ArrayRef<OpFoldResult>{one, one, b.getIndexAttr(width)},
            ArrayRef<OpFoldResult>{one, one, one});
        Value sums =
            linalg::FillOp::create(
                b, l,
                arith::ConstantOp::create(b, l, b.getZeroAttr(f32)).getResult(),
                ValueRange{iterArgs[2]})
                .getResult(0);
        Value product = panelProduct(b, l, rows, weights, sums, width);
        OpBuilder::InsertionGuard guard(rewriter);
        rewriter.setInsertionPoint(b.getInsertionBlock(),
                                   b.getInsertionPoint());
        Value next = addScaled(rewriter, l, product, groupScales, iterArgs[0]);
        scf::YieldOp::create(b, l, ValueRange{next, weights, product});
      });
  return loop.getResult(0);
}

/// Dequantizes `bytes` ([G, P / 2], one group) times `scales` ([P]) into
/// rows `row`.. of `panel` ([C, P] f32, destination style): the low nibbles
/// are its first P / 2 columns, the high ones the rest, as for unpackGroup.
/// One elementwise op per half, vectorized along the row.
static Value dequantizeGroup(OpBuilder &b, Location loc, Value bytes,
                             Value scales, Value panel, Value row) {
  auto type = cast<RankedTensorType>(bytes.getType());
  int64_t rows = type.getDimSize(0), half = type.getDimSize(1);
  Type f32 = b.getF32Type(), i8 = b.getI8Type();
  MLIRContext *context = b.getContext();
  AffineExpr k, c;
  bindDims(context, k, c);
  AffineMap identity = b.getMultiDimIdentityMap(2);
  SmallVector<AffineMap> maps = {identity, AffineMap::get(2, 0, {c}, context),
                                 identity};
  OpFoldResult one = b.getIndexAttr(1);
  for (bool high : {false, true}) {
    OpFoldResult column = b.getIndexAttr(high ? half : 0);
    Value halfScales = tensor::ExtractSliceOp::create(
        b, loc, RankedTensorType::get({half}, scaleElementType(scales)), scales,
        ArrayRef<OpFoldResult>{column},
        ArrayRef<OpFoldResult>{b.getIndexAttr(half)},
        ArrayRef<OpFoldResult>{one});
    SmallVector<OpFoldResult> offsets = {row, column};
    SmallVector<OpFoldResult> sizes = {b.getIndexAttr(rows),
                                       b.getIndexAttr(half)};
    SmallVector<OpFoldResult> strides = {one, one};
    auto destType = RankedTensorType::get({rows, half}, f32);
    Value dest = tensor::ExtractSliceOp::create(b, loc, destType, panel,
                                                offsets, sizes, strides);
    auto generic = linalg::GenericOp::create(
        b, loc, destType, ValueRange{bytes, halfScales}, dest, maps,
        SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
        [&](OpBuilder &nb, Location l, ValueRange args) {
          Value four = arith::ConstantIntOp::create(nb, l, i8, 4);
          Value byte = args[0];
          if (!high)
            byte = arith::ShLIOp::create(nb, l, byte, four);
          Value value = arith::SIToFPOp::create(
              nb, l, f32, arith::ShRSIOp::create(nb, l, byte, four));
          linalg::YieldOp::create(
              nb, l,
              ValueRange{arith::MulFOp::create(nb, l, value,
                                               widenScale(nb, l, args[1]))});
        });
    generic->setAttr(kPanelElementwiseAttrName, b.getUnitAttr());
    panel = tensor::InsertSliceOp::create(b, loc, generic.getResult(0), panel,
                                          offsets, sizes, strides);
  }
  return panel;
}

/// Dequantizes `bytes` ([C, P / 2]) times `scales` ([C / G, P]) into
/// `panel` ([C, P] f32), a group at a time.
static Value dequantizeRows(OpBuilder &b, Location loc, Value bytes,
                            Value scales, Value panel, int64_t group) {
  int64_t rows = cast<RankedTensorType>(bytes.getType()).getDimSize(0);
  int64_t half = cast<RankedTensorType>(bytes.getType()).getDimSize(1);
  OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
  Value lower = arith::ConstantIndexOp::create(b, loc, 0);
  Value upper = arith::ConstantIndexOp::create(b, loc, rows / group);
  Value step = arith::ConstantIndexOp::create(b, loc, 1);
  auto loop = scf::ForOp::create(
      b, loc, lower, upper, step, ValueRange{panel},
      [&](OpBuilder &lb, Location l, Value g, ValueRange iterArgs) {
        Value row = arith::MulIOp::create(
            lb, l, g, arith::ConstantIndexOp::create(lb, l, group));
        Value groupBytes = tensor::ExtractSliceOp::create(
            lb, l, RankedTensorType::get({group, half}, lb.getI8Type()), bytes,
            ArrayRef<OpFoldResult>{row, zero},
            ArrayRef<OpFoldResult>{lb.getIndexAttr(group),
                                   lb.getIndexAttr(half)},
            ArrayRef<OpFoldResult>{one, one});
        Value groupScales = tensor::ExtractSliceOp::create(
            lb, l, RankedTensorType::get({2 * half}, scaleElementType(scales)),
            scales, ArrayRef<OpFoldResult>{g, zero},
            ArrayRef<OpFoldResult>{one, lb.getIndexAttr(2 * half)},
            ArrayRef<OpFoldResult>{one, one});
        scf::YieldOp::create(
            lb, l,
            dequantizeGroup(lb, l, groupBytes, groupScales, iterArgs[0], row));
      });
  return loop.getResult(0);
}

Value mlir::moe::detail::emitDequantizedNibblePanel(
    RewriterBase &rewriter, Location loc, Value lhs, OpFoldResult blockCount,
    Value packed, Value scales, Value panel, PackedWeightAttr layout,
    Value out) {
  PanelSizes sizes = PanelSizes::of(lhs, packed, layout, out);
  int64_t block = sizes.block, depth = sizes.depth, group = sizes.group;
  int64_t width = sizes.width, blockDim = sizes.blockDim;
  // Rows per dequantized block: the most groups that fit 128 rows (a
  // 128 x 64 f32 block is 32 KiB, L1-sized) and divide K.
  int64_t chunk = group;
  while (chunk * 2 <= 128 && depth % (chunk * 2) == 0)
    chunk *= 2;
  Type f32 = rewriter.getF32Type();
  OpFoldResult zero = rewriter.getIndexAttr(0), one = rewriter.getIndexAttr(1);
  Value lower = arith::ConstantIndexOp::create(rewriter, loc, 0);
  Value upper = arith::ConstantIndexOp::create(rewriter, loc, depth / chunk);
  Value step = arith::ConstantIndexOp::create(rewriter, loc, 1);
  Value panelBuffer = tensor::EmptyOp::create(
      rewriter, loc, ArrayRef<int64_t>{chunk, width}, f32);
  // The sums accumulate in a buffer of their own (no view: see
  // emitPanelMatmul), copied into `out` at the end.
  Value local =
      linalg::CopyOp::create(rewriter, loc, out,
                             emptySums(rewriter, loc, blockCount, block, width))
          .getResult(0);
  auto loop = scf::ForOp::create(
      rewriter, loc, lower, upper, step, ValueRange{local, panelBuffer},
      [&](OpBuilder &b, Location l, Value c, ValueRange iterArgs) {
        Value row = arith::MulIOp::create(
            b, l, c, arith::ConstantIndexOp::create(b, l, chunk));
        Value groupRow = arith::MulIOp::create(
            b, l, c, arith::ConstantIndexOp::create(b, l, chunk / group));
        auto [rows, bytes] = sliceRows(b, l, lhs, blockCount, blockDim, packed,
                                       panel, row, chunk, width);
        Value chunkScales = tensor::ExtractSliceOp::create(
            b, l,
            RankedTensorType::get({chunk / group, width},
                                  scaleElementType(scales)),
            scales, ArrayRef<OpFoldResult>{panel, groupRow, zero},
            ArrayRef<OpFoldResult>{one, b.getIndexAttr(chunk / group),
                                   b.getIndexAttr(width)},
            ArrayRef<OpFoldResult>{one, one, one});
        Value weights =
            dequantizeRows(b, l, bytes, chunkScales, iterArgs[1], group);
        Value product = panelProduct(b, l, rows, weights, iterArgs[0], width);
        scf::YieldOp::create(b, l, ValueRange{product, weights});
      });
  return linalg::CopyOp::create(rewriter, loc, loop.getResult(0), out)
      .getResult(0);
}
