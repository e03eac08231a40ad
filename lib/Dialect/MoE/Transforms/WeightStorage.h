//===- WeightStorage.h - Narrow storage of expert weights -------*- C++ -*-===//
//
// This file declares the element conversions of moe-pack-expert-weights:
// f32 weights rounded to bf16 or quantized to int8 with column scales.
//
//===----------------------------------------------------------------------===//

#ifndef LIB_DIALECT_MOE_TRANSFORMS_WEIGHTSTORAGE_H
#define LIB_DIALECT_MOE_TRANSFORMS_WEIGHTSTORAGE_H

#include "mlir/IR/PatternMatch.h"

namespace mlir::moe::detail {

/// `weight` (an f32 tensor) rounded to bf16, to nearest even, by integer
/// operations so that every target rounds alike; a NaN becomes the quiet
/// NaN of its sign.
Value roundToBF16(RewriterBase &rewriter, Location loc, Value weight);

/// An [E, K, N] f32 weight quantized symmetrically per output column:
/// `scales[e, n] = max_k |W[e, k, n]| / 127` (f32) and `quantized[e, k, n] =
/// round_half_even(W / scales)` in [-127, 127] (i8); a column of zeros gets
/// scale 0 and zeros.
struct QuantizedWeight {
  Value quantized, scales;
};
QuantizedWeight quantizeToI8(RewriterBase &rewriter, Location loc,
                             Value weight);

/// An [E, K, N] f32 weight quantized to 4 bits in groups of `group` rows,
/// symmetric, and packed for `#moe.packed<panel, storage = i4, group>`:
/// `scales[e, p, g, c] = max |W| / 7` over rows [g * group, (g + 1) * group)
/// of column p * panel + c (f32, [E, ceil(N / panel), K / group, panel]),
/// v = round_half_even(W / scale) clamped to [-8, 7], and `quantized`
/// [E, ceil(N / panel), K, panel / 2] of i8 holds column c of a panel row
/// in the low nibble of byte c and column c + panel / 2 in its high nibble
/// (columns past N are zeros with scale 0). With `forIntegerDot`
/// (#moe.packed<..., activations = i8>) each nibble holds v + 8 and the
/// bytes of each four rows are interleaved: byte 4c + r of the four rows'
/// 2 * panel bytes is byte c of row r.
QuantizedWeight quantizeToI4(RewriterBase &rewriter, Location loc, Value weight,
                             int64_t panel, int64_t group, bool forIntegerDot);

/// `scales` (f32) rounded to `type` (f16) to nearest even, elementwise;
/// `scales` itself when `type` is null or its element type.
Value narrowScales(RewriterBase &rewriter, Location loc, Value scales,
                   Type type);

} // namespace mlir::moe::detail

#endif // LIB_DIALECT_MOE_TRANSFORMS_WEIGHTSTORAGE_H
