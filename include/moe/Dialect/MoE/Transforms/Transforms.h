//===- Transforms.h - moe dialect rewrites ----------------------*- C++ -*-===//
//
// This file declares the rewrites behind the moe dialect passes, as
// functions and pattern sets that other pipelines can reuse.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_TRANSFORMS_H
#define MOE_DIALECT_MOE_TRANSFORMS_TRANSFORMS_H

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/IR/PatternMatch.h"

#include <optional>

namespace mlir::moe {

/// Options of the token-choice to expert-choice rewrite.
struct TokenToExpertChoiceOptions {
  /// The expert-choice capacity factor; none keeps the expert compute of the
  /// token-choice layer (top_k * its capacity factor, top_k if dropless).
  std::optional<double> capacityFactor;
  /// Keep `normalize = true` as per-token normalization of the gates.
  bool keepNormalize = false;
  /// Emit remarks on the op: what the conversion drops, or why it failed.
  bool emitRemarks = true;
};

/// Rewrites the token-choice `route` and the dispatch, expert and combine
/// ops that consume it into expert-choice routing. Returns the new route,
/// or failure (IR untouched) when `route` is not token choice or cannot be
/// converted.
FailureOr<RouteOp>
convertTokenToExpertChoice(RewriterBase &rewriter, RouteOp route,
                           const TokenToExpertChoiceOptions &options);

/// Adds a pattern applying convertTokenToExpertChoice to every route.
void populateTokenToExpertChoicePatterns(
    RewritePatternSet &patterns, const TokenToExpertChoiceOptions &options);

/// Rewrites the Soft MoE layer of `route` (route, dispatch, expert,
/// combine) into dense linalg ops. Fails (IR untouched) when `route` is not
/// Soft MoE or its layer cannot be made dense.
LogicalResult convertSoftToDense(RewriterBase &rewriter, RouteOp route,
                                 bool emitRemarks = true);

/// Adds a pattern applying convertSoftToDense to every route.
void populateSoftToDensePatterns(RewritePatternSet &patterns);

} // namespace mlir::moe

#endif // MOE_DIALECT_MOE_TRANSFORMS_TRANSFORMS_H
