//===- CPUPrefetch.cpp - Prefetch of the next reduction block ---*- C++ -*-===//
//
// This file implements the software prefetch of a packed panel's next KC
// block while the row blocks of a tile compute on the current one.
//
//===----------------------------------------------------------------------===//

#include "CPUCodegenParts.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;
using namespace mlir::moe::detail;

/// Bytes of a cache line: the prefetch granule on every x86-64 CPU.
static constexpr int64_t kCacheLineBytes = 64;
/// The locality hint of prefetcht1: into L2, not L1, which holds the block
/// being read (prefetcht0 measured slower: the two blocks do not fit L1).
static constexpr int64_t kL2 = 2;

LogicalResult moe::detail::prefetchNextReductionBlock(RewriterBase &rewriter,
                                                      scf::ForOp kcLoop,
                                                      scf::ForOp blockLoop,
                                                      Value panel,
                                                      int64_t distance) {
  auto panelType = dyn_cast<RankedTensorType>(panel.getType());
  if (!panelType || panelType.getRank() != 2 || !panelType.hasStaticShape())
    return failure();
  int64_t k = panelType.getDimSize(0), p = panelType.getDimSize(1);
  int64_t lineElems =
      kCacheLineBytes / (panelType.getElementTypeBitWidth() / 8);
  std::optional<int64_t> kc = getConstantIntValue(kcLoop.getStep());
  if (!kc)
    return failure();
  // The register blocks' reduction steps: the innermost loops.
  SmallVector<scf::ForOp> steps;
  kcLoop.walk([&](scf::ForOp loop) {
    bool innermost = loop != kcLoop;
    loop.getBody()->walk([&](scf::ForOp) { innermost = false; });
    if (innermost)
      steps.push_back(loop);
  });
  if (steps.empty() || llvm::any_of(steps, [](scf::ForOp step) {
        return !getConstantIntValue(step.getStep());
      }))
    return failure();
  // The spread below counts the blocks from 0 by 1.
  if (blockLoop && (!isConstantIntValue(blockLoop.getLowerBound(), 0) ||
                    !isConstantIntValue(blockLoop.getStep(), 1)))
    blockLoop = scf::ForOp();

  Location loc = kcLoop.getLoc();
  rewriter.setInsertionPoint(kcLoop);
  // The panel as a buffer: prefetch takes a memref. One-shot bufferization
  // replaces this with the panel's own buffer (read only: no copy).
  auto bufferType = MemRefType::get(
      panelType.getShape(), panelType.getElementType(),
      StridedLayoutAttr::get(rewriter.getContext(), ShapedType::kDynamic,
                             {ShapedType::kDynamic, ShapedType::kDynamic}));
  Value buffer = bufferization::ToBufferOp::create(rewriter, loc, bufferType,
                                                   panel, /*readOnly=*/true);
  for (scf::ForOp step : steps) {
    std::optional<int64_t> k0 = getConstantIntValue(step.getStep());
    // Emits the prefetches of the rows of the step at `iv` KC further on:
    // the next block's, clamped to the panel's last step (a prefetch is a
    // hint, but its address stays inside the panel). Where `mine` is false
    // they name the rows the step reads anyway (in L1: no traffic): a
    // select, not a branch, which LLVM would answer by hoisting the step's
    // loads above it and spilling them.
    auto emitPrefetches = [&](OpBuilder &b, Value iv, Value mine) {
      // One clamp and one select per step: the rows are constant offsets
      // (scalar work competes with the FMAs for ports on AVX2 hosts).
      Value here = arith::AddIOp::create(b, loc, kcLoop.getInductionVar(), iv);
      Value ahead = arith::MinSIOp::create(
          b, loc,
          arith::AddIOp::create(
              b, loc, here,
              arith::ConstantIndexOp::create(b, loc, *kc * distance)),
          arith::ConstantIndexOp::create(b, loc, k - *k0));
      if (mine)
        ahead = arith::SelectOp::create(b, loc, mine, ahead, here);
      for (int64_t row = 0; row < *k0; ++row) {
        Value r = arith::AddIOp::create(
            b, loc, ahead, arith::ConstantIndexOp::create(b, loc, row));
        for (int64_t col = 0; col < p; col += lineElems)
          memref::PrefetchOp::create(
              b, loc, buffer,
              ValueRange{r, arith::ConstantIndexOp::create(b, loc, col)},
              /*isWrite=*/false, kL2, /*isDataCache=*/true);
      }
    };
    if (!blockLoop) {
      rewriter.setInsertionPointToStart(step.getBody());
      emitPrefetches(rewriter, step.getInductionVar(), Value());
      continue;
    }
    // Spread over the row blocks: block r prefetches for the steps r, r +
    // blocks, r + 2 blocks, ... (a counter carried by the step loop), so
    // the next block's lines are requested evenly while every block
    // computes, not in a burst in the first one (measured: see
    // docs/cpu-codegen.md).
    rewriter.setInsertionPoint(step);
    Value stepSize = arith::ConstantIndexOp::create(rewriter, loc, *k0);
    Value first = arith::MulIOp::create(rewriter, loc,
                                        blockLoop.getInductionVar(), stepSize);
    Value stride = arith::MulIOp::create(rewriter, loc,
                                         blockLoop.getUpperBound(), stepSize);
    FailureOr<LoopLikeOpInterface> counted = step.replaceWithAdditionalYields(
        rewriter, first, /*replaceInitOperandUsesInLoop=*/false,
        [&](OpBuilder &b, Location, ArrayRef<BlockArgument> next) {
          auto loop = cast<scf::ForOp>(b.getInsertionBlock()->getParentOp());
          Value iv = loop.getInductionVar();
          Value mine = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                             iv, next.front());
          emitPrefetches(b, iv, mine);
          Value later = arith::AddIOp::create(b, loc, next.front(), stride);
          return SmallVector<Value>{
              arith::SelectOp::create(b, loc, mine, later, next.front())};
        });
    if (failed(counted))
      return failure();
  }
  return success();
}
