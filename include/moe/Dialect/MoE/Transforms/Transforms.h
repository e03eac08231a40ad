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

/// Checks that the expert-choice layer `route` would become fits: a finite
/// capacity factor, a capacity C that fits int64, is at least 1 and is
/// static when T is, and route, dispatch and expert results whose sizes and
/// bytes fit int64. Reports through `emitError` (unless null) what does not;
/// succeeds for routes that are not token choice.
LogicalResult
verifyTokenToExpertChoiceSizes(RouteOp route,
                               const TokenToExpertChoiceOptions &options,
                               function_ref<InFlightDiagnostic()> emitError);

/// Rewrites the token-choice `route` and the dispatch, expert and combine
/// ops that consume it into expert-choice routing. Returns the new route,
/// or failure (IR untouched) when `route` is not token choice or cannot be
/// converted (including sizes verifyTokenToExpertChoiceSizes rejects).
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
