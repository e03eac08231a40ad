//===- IntegerDotPanels.cpp - Int8 rows times 4-bit panels ------*- C++ -*-===//
//
// This file implements the contractions by 4-bit weights stored for the
// integer dot product (#moe.packed<..., activations = i8>, GGUF's Q8_0 x
// Q4_0): a tile's rows are quantized to int8 once per group of G values,
// and each group of a panel is one i32 sum of products (moe.nibble_dot,
// which moe-cpu-codegen maps to vpdpbusd or vpmaddubsw) followed by its
// scales, so that a weight costs a fraction of an instruction instead of
// a conversion to f32 and an FMA per row.
//
//===----------------------------------------------------------------------===//

#include "IntegerDotPanels.h"
#include "QuantizedPanels.h"

#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h"

#include "moe/Dialect/MoE/Utils/SymmetricCodes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

/// The largest magnitude of an int8 row value: symmetric, as the weights.
static constexpr int64_t kRowBound = 127;

static SmallVector<utils::IteratorType> iterators(unsigned parallel,
                                                  unsigned reduction = 0) {
  SmallVector<utils::IteratorType> kinds(parallel,
                                         utils::IteratorType::parallel);
  kinds.append(reduction, utils::IteratorType::reduction);
  return kinds;
}

namespace {
/// quantizeRows' results with the values still [M, K / G, G].
struct GroupedRows {
  Value values, scales, offsets;
  SmallVector<OpFoldResult> groupedSizes;
};
} // namespace

static GroupedRows quantizeGrouped(RewriterBase &rewriter, Location loc,
                                   Value rows, int64_t group) {
  auto type = cast<RankedTensorType>(rows.getType());
  int64_t depth = type.getDimSize(1), groups = depth / group;
  Type f32 = rewriter.getF32Type(), i32 = rewriter.getI32Type();
  OpFoldResult count = tensor::getMixedSize(rewriter, loc, rows, 0);
  SmallVector<OpFoldResult> groupedSizes = {
      count, rewriter.getIndexAttr(groups), rewriter.getIndexAttr(group)};
  SmallVector<OpFoldResult> perGroup = {count, rewriter.getIndexAttr(groups)};
  int64_t countDim = type.getDimSize(0);
  auto groupedType = RankedTensorType::get({countDim, groups, group}, f32);
  Value grouped = tensor::ExpandShapeOp::create(
      rewriter, loc, groupedType, rows,
      SmallVector<ReassociationIndices>{{0}, {1, 2}}, groupedSizes);
  MLIRContext *context = rewriter.getContext();
  AffineMap full = rewriter.getMultiDimIdentityMap(3);
  AffineMap reduced = AffineMap::get(
      3, 0, {getAffineDimExpr(0, context), getAffineDimExpr(1, context)},
      context);
  auto groupType = RankedTensorType::get({countDim, groups}, i32);
  SymmetricCodes codes =
      quantizeSymmetric(rewriter, loc, grouped, 2, -kRowBound, kRowBound);
  Value values = codes.values;
  // 8 x the group's sum: the codes are v + 8.
  Value zeros =
      linalg::FillOp::create(
          rewriter, loc,
          arith::ConstantOp::create(rewriter, loc,
                                    rewriter.getI32IntegerAttr(0))
              .getResult(),
          ValueRange{tensor::EmptyOp::create(rewriter, loc, perGroup, i32)})
          .getResult(0);
  Value offsets =
      linalg::GenericOp::create(
          rewriter, loc, groupType, values, zeros,
          ArrayRef<AffineMap>{full, reduced}, iterators(2, 1),
          [&](OpBuilder &b, Location l, ValueRange args) {
            Value wide = arith::ExtSIOp::create(b, l, b.getI32Type(), args[0]);
            Value eight = arith::ShLIOp::create(
                b, l, wide,
                arith::ConstantIntOp::create(b, l, b.getI32Type(), 3));
            linalg::YieldOp::create(
                b, l, ValueRange{arith::AddIOp::create(b, l, args[1], eight)});
          })
          .getResult(0);
  return {values, codes.scales, offsets, groupedSizes};
}

QuantizedRows mlir::moe::detail::quantizeRows(RewriterBase &rewriter,
                                              Location loc, Value rows,
                                              int64_t group) {
  GroupedRows grouped = quantizeGrouped(rewriter, loc, rows, group);
  auto type = cast<RankedTensorType>(rows.getType());
  Value values = tensor::CollapseShapeOp::create(
      rewriter, loc, type.clone(rewriter.getI8Type()), grouped.values,
      SmallVector<ReassociationIndices>{{0}, {1, 2}});
  return {values, grouped.scales, grouped.offsets};
}

Value mlir::moe::detail::fakeQuantizeRows(RewriterBase &rewriter, Location loc,
                                          Value rows, int64_t group) {
  GroupedRows grouped = quantizeGrouped(rewriter, loc, rows, group);
  auto type = cast<RankedTensorType>(rows.getType());
  auto groupedType = cast<RankedTensorType>(grouped.values.getType())
                         .clone(rewriter.getF32Type());
  MLIRContext *context = rewriter.getContext();
  AffineMap full = rewriter.getMultiDimIdentityMap(3);
  AffineMap reduced = AffineMap::get(
      3, 0, {getAffineDimExpr(0, context), getAffineDimExpr(1, context)},
      context);
  Value dequantized =
      linalg::GenericOp::create(
          rewriter, loc, groupedType,
          ValueRange{grouped.values, grouped.scales},
          ValueRange{tensor::EmptyOp::create(
              rewriter, loc, grouped.groupedSizes, rewriter.getF32Type())},
          ArrayRef<AffineMap>{full, reduced, full}, iterators(3),
          [](OpBuilder &b, Location l, ValueRange args) {
            Value value =
                arith::SIToFPOp::create(b, l, b.getF32Type(), args[0]);
            linalg::YieldOp::create(
                b, l, ValueRange{arith::MulFOp::create(b, l, value, args[1])});
          })
          .getResult(0);
  return tensor::CollapseShapeOp::create(
      rewriter, loc, type, dequantized,
      SmallVector<ReassociationIndices>{{0}, {1, 2}});
}

/// [.., K, C] bytes viewed as [.., K / 4, C, 4]: each four rows' 4C bytes
/// as C runs of 4 (byte 4c + r).
static Value asQuads(RewriterBase &rewriter, Location loc, Value bytes) {
  auto type = cast<RankedTensorType>(bytes.getType());
  SmallVector<int64_t> shape(type.getShape());
  int64_t rank = shape.size(), depth = shape[rank - 2], half = shape[rank - 1];
  // Leading dimensions kept; K split as (K / 4, 4), or 4C as (4, C) or
  // (C, 4).
  SmallVector<ReassociationIndices> splitRows, pairLast;
  for (int64_t d = 0; d < rank - 2; ++d) {
    splitRows.push_back({d});
    pairLast.push_back({d});
  }
  splitRows.append({{rank - 2, rank - 1}, {rank}});
  pairLast.append({{rank - 2}, {rank - 1, rank}});
  SmallVector<int64_t> runs(shape.begin(), shape.end() - 2);
  runs.append({depth / 4, 4 * half});
  // [.., K, C] -> [.., K / 4, 4, C] -> [.., K / 4, 4C] -> [.., K / 4, C, 4].
  SmallVector<int64_t> rowsOfFour(shape.begin(), shape.end() - 2);
  rowsOfFour.append({depth / 4, 4, half});
  Value expanded = tensor::ExpandShapeOp::create(
      rewriter, loc, type.clone(rowsOfFour), bytes, splitRows);
  Value flat = tensor::CollapseShapeOp::create(rewriter, loc, type.clone(runs),
                                               expanded, pairLast);
  SmallVector<int64_t> quads(shape.begin(), shape.end() - 2);
  quads.append({depth / 4, half, 4});
  return tensor::ExpandShapeOp::create(rewriter, loc, type.clone(quads), flat,
                                       pairLast);
}

Value mlir::moe::detail::deinterleaveNibbles(RewriterBase &rewriter,
                                             Location loc, Value packed) {
  auto type = cast<RankedTensorType>(packed.getType());
  int64_t panels = type.getDimSize(0), depth = type.getDimSize(1),
          half = type.getDimSize(2);
  Type i8 = rewriter.getI8Type();
  Value quads = asQuads(rewriter, loc, packed);
  // [P', K / 4, C, 4] -> [P', K / 4, 4, C] -> [P', K, C], each nibble
  // back to two's complement (v + 8 with its sign bit flipped is v).
  Value rows =
      linalg::TransposeOp::create(
          rewriter, loc, quads,
          tensor::EmptyOp::create(
              rewriter, loc, ArrayRef<int64_t>{panels, depth / 4, 4, half}, i8),
          ArrayRef<int64_t>{0, 1, 3, 2})
          .getResult()[0];
  Value plain = tensor::CollapseShapeOp::create(
      rewriter, loc, type, rows,
      SmallVector<ReassociationIndices>{{0}, {1, 2}, {3}});
  AffineMap identity = rewriter.getMultiDimIdentityMap(3);
  return linalg::GenericOp::create(
             rewriter, loc, type, plain,
             ValueRange{
                 tensor::EmptyOp::create(rewriter, loc, type.getShape(), i8)},
             ArrayRef<AffineMap>{identity, identity}, iterators(3),
             [](OpBuilder &b, Location l, ValueRange args) {
               Value flip = arith::ConstantIntOp::create(b, l, b.getI8Type(),
                                                         0x88 - 256);
               linalg::YieldOp::create(
                   b, l,
                   ValueRange{arith::XOrIOp::create(b, l, args[0], flip)});
             })
      .getResult(0);
}

/// The group's i32 sums [B, M0, 2, C] (destination `sums`) of `rows` [B,
/// M0, G / 4, 4] (i8) times the codes [G / 4, C, 4]: half 0 the low
/// nibbles (columns c), half 1 the high ones (columns c + C).
static Value nibbleDot(OpBuilder &b, Location loc, Value rows, Value codes,
                       Value sums) {
  MLIRContext *context = b.getContext();
  AffineExpr bi, m, h, c, q, r;
  bindDims(context, bi, m, h, c, q, r);
  SmallVector<AffineMap> maps = {AffineMap::get(6, 0, {bi, m, q, r}, context),
                                 AffineMap::get(6, 0, {q, c, r}, context),
                                 AffineMap::get(6, 0, {bi, m, h, c}, context)};
  auto generic = linalg::GenericOp::create(
      b, loc, sums.getType(), ValueRange{rows, codes}, sums, maps,
      iterators(4, 2), [](OpBuilder &nb, Location l, ValueRange args) {
        Type i8 = nb.getI8Type(), i32 = nb.getI32Type();
        Value byte = args[1];
        Value high = arith::ShRUIOp::create(
            nb, l, byte, arith::ConstantIntOp::create(nb, l, i8, 4));
        Value low = arith::AndIOp::create(
            nb, l, byte, arith::ConstantIntOp::create(nb, l, i8, 15));
        Value isHigh = arith::CmpIOp::create(
            nb, l, arith::CmpIPredicate::ne, linalg::IndexOp::create(nb, l, 2),
            arith::ConstantIndexOp::create(nb, l, 0));
        Value code = arith::SelectOp::create(nb, l, isHigh, high, low);
        Value product = arith::MulIOp::create(
            nb, l, arith::ExtUIOp::create(nb, l, i32, code),
            arith::ExtSIOp::create(nb, l, i32, args[0]));
        linalg::YieldOp::create(
            nb, l, ValueRange{arith::AddIOp::create(nb, l, args[2], product)});
      });
  generic->setAttr(kNibbleDotAttrName, b.getUnitAttr());
  return generic.getResult(0);
}

/// `out + column scales * (row scales * float(sums - offsets))` over [B,
/// M0, P].
static Value addGroup(OpBuilder &b, Location loc, Value sums, Value rowScales,
                      Value offsets, Value columnScales, Value out) {
  MLIRContext *context = b.getContext();
  AffineExpr bi, m, n;
  bindDims(context, bi, m, n);
  AffineMap identity = b.getMultiDimIdentityMap(3);
  AffineMap row = AffineMap::get(3, 0, {bi, m}, context);
  SmallVector<AffineMap> maps = {identity, row, row,
                                 AffineMap::get(3, 0, {n}, context), identity};
  auto generic = linalg::GenericOp::create(
      b, loc, out.getType(), ValueRange{sums, rowScales, offsets, columnScales},
      out, maps, iterators(3), [](OpBuilder &nb, Location l, ValueRange args) {
        Value exact = arith::SubIOp::create(nb, l, args[0], args[2]);
        Value rowScaled = arith::MulFOp::create(
            nb, l, args[1],
            arith::SIToFPOp::create(nb, l, nb.getF32Type(), exact));
        Value scaled =
            arith::MulFOp::create(nb, l, widenScale(nb, l, args[3]), rowScaled);
        linalg::YieldOp::create(
            nb, l, ValueRange{arith::AddFOp::create(nb, l, args[4], scaled)});
      });
  // (Left to LLVM's loop vectorizer, as addScaled: vectorized here, the
  // broadcast scales and the memref alias folding rewrite each other.)
  generic->setAttr(kExpertTileAttrName, b.getUnitAttr());
  generic->setAttr(kNibbleDotEpilogueAttrName, b.getUnitAttr());
  return generic.getResult(0);
}

Value mlir::moe::detail::emitIntegerDotPanel(
    RewriterBase &rewriter, Location loc, const QuantizedRows &rows,
    OpFoldResult blockCount, Value packed, Value scales, Value panel,
    PackedWeightAttr layout, Value out) {
  auto outType = cast<RankedTensorType>(out.getType());
  auto valuesType = cast<RankedTensorType>(rows.values.getType());
  int64_t blockDim = outType.getDimSize(0), block = outType.getDimSize(1);
  int64_t width = layout.getPanel(), half = width / 2;
  int64_t depth = valuesType.getDimSize(1), group = layout.getGroup();
  int64_t quadsPerGroup = group / 4;
  Type i8 = rewriter.getI8Type(), i32 = rewriter.getI32Type();
  OpFoldResult zero = rewriter.getIndexAttr(0), one = rewriter.getIndexAttr(1);
  auto index = [&](OpBuilder &b, Location l, int64_t v) -> OpFoldResult {
    (void)l;
    return b.getIndexAttr(v);
  };
  // The panel's codes [K / 4, C, 4] and the rows' values [B, M0, K / 4, 4].
  Value panelBytes = tensor::ExtractSliceOp::create(
      rewriter, loc, RankedTensorType::get({depth, half}, i8), packed,
      ArrayRef<OpFoldResult>{panel, zero, zero},
      ArrayRef<OpFoldResult>{one, rewriter.getIndexAttr(depth),
                             rewriter.getIndexAttr(half)},
      ArrayRef<OpFoldResult>{one, one, one});
  Value codes = asQuads(rewriter, loc, panelBytes);
  // The rows' values, scales and offsets in blocks of M0 rows:
  // [M / M0, M0, K / 4, 4] and [M / M0, M0, K / G].
  OpFoldResult rowCount = tensor::getMixedSize(rewriter, loc, rows.values, 0);
  OpFoldResult allBlocks = rewriter.getIndexAttr(valuesType.getDimSize(0) /
                                                 std::max<int64_t>(block, 1));
  int64_t allBlocksDim = ShapedType::kDynamic;
  if (!valuesType.isDynamicDim(0))
    allBlocksDim = valuesType.getDimSize(0) / block;
  else
    allBlocks = arith::DivUIOp::create(
                    rewriter, loc,
                    getValueOrCreateConstantIndexOp(rewriter, loc, rowCount),
                    arith::ConstantIndexOp::create(rewriter, loc, block))
                    .getResult();
  Value rowQuads = tensor::ExpandShapeOp::create(
      rewriter, loc,
      RankedTensorType::get({allBlocksDim, block, depth / 4, 4}, i8),
      rows.values, SmallVector<ReassociationIndices>{{0, 1}, {2, 3}},
      ArrayRef<OpFoldResult>{allBlocks, rewriter.getIndexAttr(block),
                             rewriter.getIndexAttr(depth / 4),
                             rewriter.getIndexAttr(4)});
  auto blockRows = [&](Value source) -> Value {
    auto type = cast<RankedTensorType>(source.getType());
    int64_t columns = type.getDimSize(1);
    return tensor::ExpandShapeOp::create(
        rewriter, loc,
        RankedTensorType::get({allBlocksDim, block, columns},
                              type.getElementType()),
        source, SmallVector<ReassociationIndices>{{0, 1}, {2}},
        ArrayRef<OpFoldResult>{allBlocks, rewriter.getIndexAttr(block),
                               rewriter.getIndexAttr(columns)});
  };
  Value blockedScales = blockRows(rows.scales);
  Value blockedOffsets = blockRows(rows.offsets);
  Value lower = arith::ConstantIndexOp::create(rewriter, loc, 0);
  Value upper = arith::ConstantIndexOp::create(rewriter, loc, depth / group);
  Value step = arith::ConstantIndexOp::create(rewriter, loc, 1);
  // The group sums are a buffer of the loop, reused by every group.
  Value sumsBuffer = tensor::EmptyOp::create(
      rewriter, loc,
      ArrayRef<OpFoldResult>{blockCount, rewriter.getIndexAttr(block),
                             rewriter.getIndexAttr(2),
                             rewriter.getIndexAttr(half)},
      i32);
  auto loop = scf::ForOp::create(
      rewriter, loc, lower, upper, step, ValueRange{out, sumsBuffer},
      [&](OpBuilder &b, Location l, Value g, ValueRange iterArgs) {
        Value quad = arith::MulIOp::create(
            b, l, g, arith::ConstantIndexOp::create(b, l, quadsPerGroup));
        Value groupRows = tensor::ExtractSliceOp::create(
            b, l,
            RankedTensorType::get({blockDim, block, quadsPerGroup, 4}, i8),
            rowQuads, ArrayRef<OpFoldResult>{zero, zero, quad, zero},
            ArrayRef<OpFoldResult>{blockCount, index(b, l, block),
                                   index(b, l, quadsPerGroup), index(b, l, 4)},
            ArrayRef<OpFoldResult>{one, one, one, one});
        Value groupCodes = tensor::ExtractSliceOp::create(
            b, l, RankedTensorType::get({quadsPerGroup, half, 4}, i8), codes,
            ArrayRef<OpFoldResult>{quad, zero, zero},
            ArrayRef<OpFoldResult>{index(b, l, quadsPerGroup),
                                   index(b, l, half), index(b, l, 4)},
            ArrayRef<OpFoldResult>{one, one, one});
        // Group g's scale or offset of each active row: [B, M0].
        auto perRow = [&](Value blocked) -> Value {
          Type element = getElementTypeOrSelf(blocked.getType());
          return tensor::ExtractSliceOp::create(
              b, l, RankedTensorType::get({blockDim, block}, element), blocked,
              ArrayRef<OpFoldResult>{zero, zero, g},
              ArrayRef<OpFoldResult>{blockCount, index(b, l, block), one},
              ArrayRef<OpFoldResult>{one, one, one});
        };
        Value columnScales = tensor::ExtractSliceOp::create(
            b, l, RankedTensorType::get({width}, scaleElementType(scales)),
            scales, ArrayRef<OpFoldResult>{panel, g, zero},
            ArrayRef<OpFoldResult>{one, one, index(b, l, width)},
            ArrayRef<OpFoldResult>{one, one, one});
        Value cleared = linalg::FillOp::create(b, l,
                                               arith::ConstantOp::create(
                                                   b, l, b.getI32IntegerAttr(0))
                                                   .getResult(),
                                               ValueRange{iterArgs[1]})
                            .getResult(0);
        Value sums = nibbleDot(b, l, groupRows, groupCodes, cleared);
        Value flatSums = tensor::CollapseShapeOp::create(
            b, l, sums, SmallVector<ReassociationIndices>{{0}, {1}, {2, 3}});
        Value next =
            addGroup(b, l, flatSums, perRow(blockedScales),
                     perRow(blockedOffsets), columnScales, iterArgs[0]);
        scf::YieldOp::create(b, l, ValueRange{next, sums});
      });
  return loop.getResult(0);
}
