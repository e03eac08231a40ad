//===- BatchExperts.h - Experts as batched ops ------------------*- C++ -*-===//
//
// This file declares the rewrite of a moe.expert into batched ops over its
// leading expert dimension.
//
//===----------------------------------------------------------------------===//

#ifndef LIB_DIALECT_MOE_TRANSFORMS_BATCHEXPERTS_H
#define LIB_DIALECT_MOE_TRANSFORMS_BATCHEXPERTS_H

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/IR/PatternMatch.h"

namespace mlir::moe {

/// Returns the first op of the expert's body that cannot gain a leading
/// expert dimension (the expert itself for grouped inputs), or null.
Operation *findUnbatchableOp(ExpertOp expert);

/// Emits the expert's body as batched ops at the rewriter's insertion point
/// and returns the batched result (`[E, R, D']`). Requires
/// findUnbatchableOp(expert) to be null.
Value batchExpert(RewriterBase &rewriter, ExpertOp expert);

} // namespace mlir::moe

#endif // LIB_DIALECT_MOE_TRANSFORMS_BATCHEXPERTS_H
