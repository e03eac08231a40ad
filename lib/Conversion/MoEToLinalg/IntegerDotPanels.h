//===- IntegerDotPanels.h - Int8 rows times 4-bit panels --------*- C++ -*-===//
//
// This file declares the pieces of the contractions by 4-bit weights stored
// for the integer dot product (#moe.packed<..., activations = i8>): rows
// quantized to int8 per group, the group sums in i32, and the interleaved
// layout read back as the plain 4-bit one.
//
//===----------------------------------------------------------------------===//

#ifndef LIB_CONVERSION_MOETOLINALG_INTEGERDOTPANELS_H
#define LIB_CONVERSION_MOETOLINALG_INTEGERDOTPANELS_H

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/IR/PatternMatch.h"

namespace mlir::moe::detail {

/// Rows [M, K] (f32) quantized to int8 per group of G values: `values`
/// [M, K] (i8, round_half_even(x / t) in [-127, 127]), `scales` [M, K / G]
/// (f32, t = max |x| / 127, NaN-blind) and `offsets` [M, K / G] (i32, 8 x
/// the group's sum of values: what the codes' offset of 8 adds to a dot
/// product).
struct QuantizedRows {
  Value values, scales, offsets;
};
QuantizedRows quantizeRows(RewriterBase &rewriter, Location loc, Value rows,
                           int64_t group);

/// The f32 values quantizeRows' int8 rows stand for (values x scales), for
/// the contractions that run on unpacked weights.
Value fakeQuantizeRows(RewriterBase &rewriter, Location loc, Value rows,
                       int64_t group);

/// A packed slice in the interleaved, offset layout ([ceil(N / P), K, P /
/// 2] bytes) rewritten to the plain 4-bit layout of the same shape.
Value deinterleaveNibbles(RewriterBase &rewriter, Location loc, Value packed);

/// Adds `rows x panel` to `out` ([B, M0, P] f32) for column panel `panel`
/// of an interleaved 4-bit slice, one group at a time: the i32 sums of the
/// group's codes times the quantized rows (`rows`, [B, M0, K] values and
/// [B, M0, K / G] scales and offsets, the first `blockCount` blocks),
/// less the offsets, times the row and column scales.
Value emitIntegerDotPanel(RewriterBase &rewriter, Location loc,
                          const QuantizedRows &rows, OpFoldResult blockCount,
                          Value packed, Value scales, Value panel,
                          PackedWeightAttr layout, Value out);

} // namespace mlir::moe::detail

#endif // LIB_CONVERSION_MOETOLINALG_INTEGERDOTPANELS_H
