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

} // namespace mlir::moe::detail

#endif // LIB_DIALECT_MOE_TRANSFORMS_WEIGHTSTORAGE_H
