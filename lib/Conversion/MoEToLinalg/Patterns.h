//===- Patterns.h - Per-op moe-to-linalg patterns ---------------*- C++ -*-===//
//
// This file declares the per-op pattern sets that together make up
// populateMoEToLinalgConversionPatterns.
//
//===----------------------------------------------------------------------===//

#ifndef LIB_CONVERSION_MOETOLINALG_PATTERNS_H
#define LIB_CONVERSION_MOETOLINALG_PATTERNS_H

#include <cstdint>

namespace mlir {
class RewritePatternSet;
} // namespace mlir

namespace mlir::moe::detail {

/// `parallel` builds the routing scans as independent searches; `warpLanes`
/// > 0 splits maxima and ranks over lanes combined by shuffles.
void populateRouteToLinalgPatterns(RewritePatternSet &patterns,
                                   bool parallel = false,
                                   int64_t warpLanes = 0);
void populateDispatchToLinalgPatterns(RewritePatternSet &patterns);
/// `tileRows` > 0 runs bodies written for a dynamic row count on padded
/// tiles of that many rows.
void populateExpertToLinalgPatterns(RewritePatternSet &patterns,
                                    int64_t tileRows = 0);
/// `byToken` combines through a per-token inverse index (gatherAddRows).
void populateCombineToLinalgPatterns(RewritePatternSet &patterns,
                                     bool byToken = false);

} // namespace mlir::moe::detail

#endif // LIB_CONVERSION_MOETOLINALG_PATTERNS_H
