//===- WeightUses.h - How an expert body uses its weights -------*- C++ -*-===//
//
// This file declares the query that decides which expert weights can be
// packed in panels (#moe.packed) and multiplied panel by panel.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_UTILS_WEIGHTUSES_H
#define MOE_DIALECT_MOE_UTILS_WEIGHTUSES_H

#include "mlir/IR/Operation.h"

namespace mlir::moe {

/// Whether `op` is a linalg.matmul of rows by `weight` (the right-hand
/// side, default indexing maps, a static number of columns): a contraction that
/// can run one column panel of the weight at a time.
bool isPanelMatmulOf(Operation *op, Value weight);

/// Whether every use of `weight` (an expert body argument) is a panel
/// matmul of the same block.
bool hasOnlyPanelMatmulUses(Value weight);

} // namespace mlir::moe

#endif // MOE_DIALECT_MOE_UTILS_WEIGHTUSES_H
