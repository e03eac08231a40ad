//===- CPURowMatmuls.cpp - Vector code for other matmuls ---*- C++ -*-===//
//
// This file implements vectorizeRowMatmul: the CPU codegen of the
// linalg.matmul ops outside the fused expert tiles, chiefly the router's
// logits ([T, D] x [D, E]), whose row count T is dynamic. Left to
// convert-linalg-to-loops they are scalar loops that store the accumulator
// at every step: on the fine-grained layer (T = 256, D = 2048, E = 64) that
// loop was 10 % of the whole layer, run by one thread while the other
// waited.
//
//===----------------------------------------------------------------------===//

#include "CPUCodegenParts.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

using namespace mlir;
using namespace mlir::moe::detail;

/// At most this many rows per register block (a column block narrower than
/// a vector register takes one register per row).
static constexpr int64_t kMaxRows = 16;

/// Folds the constant sizes that peeling left in `root`'s body into static
/// types, so that the matmul inside has static sizes.
static LogicalResult foldStaticSizes(Operation *root) {
  RewritePatternSet patterns(root->getContext());
  addCanonicalizations(patterns);
  return applyPatternsGreedily(root, std::move(patterns));
}

/// Vectorizes every matmul under `root` whose sizes are static and whose
/// rows `b`'s register block divides, with that block.
static LogicalResult vectorizeStaticMatmuls(RewriterBase &rewriter,
                                            Operation *root, Blocking b) {
  SmallVector<linalg::MatmulOp> matmuls;
  root->walk([&](linalg::MatmulOp op) { matmuls.push_back(op); });
  for (linalg::MatmulOp op : matmuls) {
    SmallVector<int64_t> ranges = op.getStaticLoopRanges();
    if (llvm::any_of(ranges, ShapedType::isDynamic) || ranges[0] % b.m0 != 0)
      continue;
    if (failed(vectorizeMatmul(rewriter, op, b)))
      return failure();
  }
  return success();
}

LogicalResult moe::detail::vectorizeRowMatmul(RewriterBase &rewriter,
                                              linalg::MatmulOp matmul,
                                              const CPUMicroKernel &kernel) {
  SmallVector<int64_t> ranges = matmul.getStaticLoopRanges();
  int64_t m = ranges[0], n = ranges[1], k = ranges[2];
  if (ShapedType::isDynamic(n) || ShapedType::isDynamic(k) ||
      matmul.hasUserDefinedMaps() || !isF32Contraction(matmul))
    return success();
  // Columns: the widest multiple of the vector lanes dividing N, else a
  // narrower vector (the router of 8 experts: 8 columns).
  int64_t lanes = kernel.lanes(), n0 = 0;
  for (int64_t cols = kernel.cols; cols >= lanes && !n0; cols -= lanes)
    if (n % cols == 0)
      n0 = cols;
  for (int64_t cols = lanes / 2; cols >= 4 && !n0; cols /= 2)
    if (n % cols == 0)
      n0 = cols;
  if (!n0)
    return success();
  // Rows: as many accumulator registers as the kernel has. The whole
  // reduction is one pass (KC = K) with the accumulators in registers, one
  // step (K0 = 1) at a time: the left-hand side is read where it lies, each
  // of its values broadcast from memory into the FMAs, with no transposed
  // copy of it (T x D: a pass over the layer's input).
  int64_t perRow = (n0 + lanes - 1) / lanes;
  Blocking b;
  b.split = n;
  b.kc = k;
  b.m0 = std::clamp<int64_t>(kernel.accumulators() / perRow, 1, kMaxRows);
  b.n0 = n0;
  b.k0 = 1;
  b.transposeLhs = false;
  if (!ShapedType::isDynamic(m) && m % b.m0 == 0)
    return vectorizeMatmul(rewriter, matmul, b);

  // Row blocks of M0 while they are full, then the rest row by row: the
  // loop over row blocks is peeled into full blocks (static sizes once the
  // peeling's bounds are folded) and one partial block.
  using LoopType = scf::SCFTilingOptions::LoopType;
  SmallVector<LoopLikeOpInterface> loops;
  if (failed(tile(rewriter, cast<TilingInterface>(*matmul), {b.m0, 0, 0},
                  LoopType::ForOp, {}, &loops)))
    return failure();
  auto blocks = cast<scf::ForOp>(*loops.front());
  scf::ForOp rest;
  if (failed(scf::peelForLoopAndSimplifyBounds(rewriter, blocks, rest)))
    rest = nullptr;
  if (failed(foldStaticSizes(blocks)) ||
      failed(vectorizeStaticMatmuls(rewriter, blocks, b)))
    return failure();
  if (!rest)
    return success();
  SmallVector<linalg::MatmulOp> partial;
  rest->walk([&](linalg::MatmulOp op) { partial.push_back(op); });
  for (linalg::MatmulOp op : partial)
    if (failed(tile(rewriter, cast<TilingInterface>(*op), {1, 0, 0},
                    LoopType::ForOp)))
      return failure();
  b.m0 = 1;
  if (failed(foldStaticSizes(rest)))
    return failure();
  return vectorizeStaticMatmuls(rewriter, rest, b);
}
