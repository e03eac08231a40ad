//===- Patterns.h - Per-op moe-to-linalg patterns ---------------*- C++ -*-===//
//
// This file declares the per-op pattern sets that together make up
// populateMoEToLinalgConversionPatterns.
//
//===----------------------------------------------------------------------===//

#ifndef LIB_CONVERSION_MOETOLINALG_PATTERNS_H
#define LIB_CONVERSION_MOETOLINALG_PATTERNS_H

namespace mlir {
class RewritePatternSet;
} // namespace mlir

namespace mlir::moe::detail {

void populateRouteToLinalgPatterns(RewritePatternSet &patterns);
void populateDispatchToLinalgPatterns(RewritePatternSet &patterns);
void populateExpertToLinalgPatterns(RewritePatternSet &patterns);
void populateCombineToLinalgPatterns(RewritePatternSet &patterns);

} // namespace mlir::moe::detail

#endif // LIB_CONVERSION_MOETOLINALG_PATTERNS_H
