//===- SymmetricCodes.h - Symmetric integer quantization -------*- C++ -*-===//
//
// This file declares the scalar step shared by the quantization of weights
// (moe-pack-expert-weights) and of a tile's rows (int8 activations): a value
// divided by its scale, rounded half to even and clamped to the code range.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_UTILS_SYMMETRICCODES_H
#define MOE_DIALECT_MOE_UTILS_SYMMETRICCODES_H

#include "mlir/IR/Builders.h"

namespace mlir::moe {

/// round_half_even(x / scale) clamped to [lowest, largest], as an i8 code
/// (f32 `x` and `scale`). A scale of 0 (an all-zero group) divides by 1;
/// the clamp (maxnumf, minnumf) maps a NaN to `lowest`, so that the
/// conversion to an integer is defined for every input.
Value buildSymmetricCode(OpBuilder &b, Location loc, Value x, Value scale,
                         int64_t lowest, int64_t largest);

} // namespace mlir::moe

#endif // MOE_DIALECT_MOE_UTILS_SYMMETRICCODES_H
