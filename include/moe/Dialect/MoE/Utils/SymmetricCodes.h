//===- SymmetricCodes.h - Symmetric integer quantization -------*- C++ -*-===//
//
// This file declares the symmetric quantization shared by the weights
// (moe-pack-expert-weights) and a tile's rows (int8 activations): a scale
// per slice along one dimension, and each value divided by it, rounded
// half to even and clamped to the code range.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_UTILS_SYMMETRICCODES_H
#define MOE_DIALECT_MOE_UTILS_SYMMETRICCODES_H

#include "mlir/IR/PatternMatch.h"

namespace mlir::moe {

/// An f32 tensor quantized along one dimension: `values` (i8, the input's
/// shape) and `scales` (f32, the input's shape without that dimension).
struct SymmetricCodes {
  Value values, scales;
};

/// Quantizes `input` (an f32 tensor, dynamic sizes allowed) along `dim`:
/// scales = max |x| / `largest` over `dim` (maxnumf: a NaN does not make a
/// scale NaN), values = round_half_even(x / scale) clamped to [`lowest`,
/// `largest`] (the clamp, maxnumf and minnumf, maps a NaN to `lowest`, so
/// that the conversion to an integer is defined for every input); a scale
/// of 0 (an all-zero slice) divides by 1. Built of linalg ops.
SymmetricCodes quantizeSymmetric(RewriterBase &rewriter, Location loc,
                                 Value input, unsigned dim, int64_t lowest,
                                 int64_t largest);

} // namespace mlir::moe

#endif // MOE_DIALECT_MOE_UTILS_SYMMETRICCODES_H
