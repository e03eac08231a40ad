//===- CPUElementwise.cpp - Vectorizing the panels' elementwise ops -*- C++
//-*-===//
//
// This file vectorizes the elementwise linalg ops that unpack a group of a
// 4-bit panel next to its contraction: row by row, along the innermost
// dimension (a row of bytes), at vector width.
//
//===----------------------------------------------------------------------===//

#include "CPUCodegenParts.h"

#include "mlir/Dialect/Linalg/Transforms/Transforms.h"

using namespace mlir;
using namespace mlir::moe::detail;

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
