//===- CPUElementwise.cpp - Vectorizing ops in place ------------*- C++ -*-===//
//
// This file holds linalg::vectorize applied in place, and vectorizes the
// elementwise linalg ops that unpack a group of a 4-bit panel next to its
// contraction: row by row, along the innermost dimension (a row of bytes).
//
//===----------------------------------------------------------------------===//

#include "CPUCodegenParts.h"

#include "mlir/Dialect/Linalg/Transforms/Transforms.h"

using namespace mlir;
using namespace mlir::moe::detail;

LogicalResult moe::detail::vectorizeInPlace(RewriterBase &rewriter,
                                            Operation *op) {
  rewriter.setInsertionPoint(op);
  FailureOr<linalg::VectorizationResult> vectorized =
      linalg::vectorize(rewriter, op);
  if (failed(vectorized))
    return failure();
  rewriter.replaceOp(op, vectorized->replacements);
  return success();
}

LogicalResult moe::detail::vectorizePanelElementwise(RewriterBase &rewriter,
                                                     linalg::GenericOp op) {
  if (op.getNumReductionLoops() != 0)
    return failure();
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  if (ranges.empty() || ShapedType::isDynamic(ranges.back()))
    return failure();
  // Every dimension but the innermost in steps of 1: one vector per row.
  SmallVector<int64_t> sizes(ranges.size(), 1);
  sizes.back() = 0;
  FailureOr<TilingInterface> tiled = cast<TilingInterface>(op.getOperation());
  if (ranges.size() > 1)
    tiled =
        tile(rewriter, *tiled, sizes, scf::SCFTilingOptions::LoopType::ForOp);
  if (failed(tiled))
    return failure();
  return vectorizeInPlace(rewriter, *tiled);
}
