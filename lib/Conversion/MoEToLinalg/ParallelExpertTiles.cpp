//===- ParallelExpertTiles.cpp - moe-parallel-expert-tiles ------*- C++ -*-===//
//
// This file runs the bufferized row-tile loops of the fused layer's experts
// as parallel loops when an expert has enough tiles, so that threads take
// whole tiles (gather, body, scatter) rather than splitting each tile's
// contractions into column panels with serial work in between.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

namespace mlir::moe {
#define GEN_PASS_DEF_PARALLELEXPERTTILES
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// The buffer `value` is a view of (through view-like ops).
static Value rootBuffer(Value value) {
  while (auto view = value.getDefiningOp<ViewLikeOpInterface>())
    value = view.getViewSource();
  return value;
}

/// True if the iterations of `loop` share at most one buffer they write:
/// the layer's accumulator, whose rows they split. Temporaries allocated
/// outside the loop and written by every iteration (a sequential loop may
/// reuse them; parallel ones would race) make it false.
static bool writesOneOutsideBuffer(scf::ForOp loop) {
  llvm::SmallPtrSet<Value, 2> outside;
  loop.getBody()->walk([&](MemoryEffectOpInterface op) {
    SmallVector<MemoryEffects::EffectInstance> effects;
    op.getEffects(effects);
    for (const MemoryEffects::EffectInstance &effect : effects) {
      if (!isa<MemoryEffects::Write>(effect.getEffect()) || !effect.getValue())
        continue;
      Value root = rootBuffer(effect.getValue());
      if (!loop->isAncestor(root.getParentBlock()->getParentOp()))
        outside.insert(root);
    }
  });
  return outside.size() <= 1;
}

/// Rewrites `loop` (no results) into an scf.if choosing between a parallel
/// copy and the sequential loop by its trip count.
static LogicalResult parallelize(RewriterBase &rewriter, scf::ForOp loop,
                                 int64_t minTiles) {
  Location loc = loop.getLoc();
  rewriter.setInsertionPoint(loop);
  Value lb = loop.getLowerBound(), ub = loop.getUpperBound(),
        step = loop.getStep();
  // trips >= minTiles  <=>  ub - lb > (minTiles - 1) * step (lb <= ub).
  Value span = arith::SubIOp::create(rewriter, loc, ub, lb);
  Value needed = arith::MulIOp::create(
      rewriter, loc, step,
      arith::ConstantIndexOp::create(rewriter, loc, minTiles - 1));
  Value enough = arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::sgt,
                                       span, needed);
  auto ifOp = scf::IfOp::create(rewriter, loc, enough, /*withElse=*/true);

  rewriter.setInsertionPointToStart(ifOp.thenBlock());
  auto parallel = scf::ParallelOp::create(rewriter, loc, ValueRange{lb},
                                          ValueRange{ub}, ValueRange{step});
  IRMapping mapping;
  mapping.map(loop.getInductionVar(), parallel.getInductionVars()[0]);
  rewriter.setInsertionPoint(parallel.getBody()->getTerminator());
  for (Operation &op : loop.getBody()->without_terminator())
    rewriter.clone(op, mapping);
  // The threads are taken by the tiles: nested panel loops run in turn.
  SmallVector<scf::ForallOp> nested;
  parallel.walk([&](scf::ForallOp forall) { nested.push_back(forall); });
  for (scf::ForallOp forall : nested) {
    rewriter.setInsertionPoint(forall);
    if (failed(scf::forallToForLoop(rewriter, forall)))
      return failure();
  }

  loop->removeAttr(moe::kIndependentTilesAttrName);
  rewriter.moveOpBefore(loop, ifOp.elseBlock()->getTerminator());
  return success();
}

struct ParallelExpertTilesPass
    : moe::impl::ParallelExpertTilesBase<ParallelExpertTilesPass> {
  using Base::Base;

  void runOnOperation() override {
    if (minTiles < 1 || minTiles > 1024) {
      getOperation()->emitError("moe-parallel-expert-tiles: min-tiles must "
                                "be in [1, 1024], got ")
          << static_cast<int64_t>(minTiles);
      return signalPassFailure();
    }
    SmallVector<scf::ForOp> loops;
    getOperation().walk([&](scf::ForOp loop) {
      if (loop->hasAttr(moe::kIndependentTilesAttrName))
        loops.push_back(loop);
    });
    IRRewriter rewriter(&getContext());
    for (scf::ForOp loop : loops) {
      if (loop.getNumResults() != 0 || !writesOneOutsideBuffer(loop)) {
        loop->removeAttr(moe::kIndependentTilesAttrName);
        continue;
      }
      if (failed(parallelize(rewriter, loop, minTiles)))
        return signalPassFailure();
    }
  }
};

} // namespace
