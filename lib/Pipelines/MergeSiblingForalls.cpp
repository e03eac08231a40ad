//===- MergeSiblingForalls.cpp - moe-merge-sibling-foralls ------*- C++ -*-===//
//
// This file implements moe-merge-sibling-foralls: independent neighbouring
// scf.forall loops on buffers become one loop over both iteration spaces,
// so that threads share out the iterations of both at once.
//
//===----------------------------------------------------------------------===//

#include "moe/Pipelines/MergeSiblingForalls.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MERGESIBLINGFORALLS
#include "moe/Pipelines/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// The buffers a loop reads and writes from outside its body.
struct Accesses {
  llvm::SmallPtrSet<Value, 8> reads, writes;
};

} // namespace

/// The buffer `value` is a view of (through view-like ops).
static Value rootBuffer(Value value) {
  while (auto view = value.getDefiningOp<ViewLikeOpInterface>())
    value = view.getViewSource();
  return value;
}

/// The outside buffers `loop`'s body accesses, or failure when an access
/// names no buffer or an op's effects are unknown.
static FailureOr<Accesses> collectAccesses(scf::ForallOp loop) {
  Accesses accesses;
  WalkResult result = loop.getBody()->walk([&](Operation *op) {
    if (op->hasTrait<OpTrait::HasRecursiveMemoryEffects>())
      return WalkResult::advance();
    auto effecting = dyn_cast<MemoryEffectOpInterface>(op);
    if (!effecting)
      return WalkResult::interrupt();
    SmallVector<MemoryEffects::EffectInstance> effects;
    effecting.getEffects(effects);
    for (const MemoryEffects::EffectInstance &effect : effects) {
      bool read = isa<MemoryEffects::Read>(effect.getEffect());
      bool write = isa<MemoryEffects::Write>(effect.getEffect());
      if (!read && !write)
        continue; // Allocation and free of the body's own buffers.
      if (!effect.getValue())
        return WalkResult::interrupt();
      Value root = rootBuffer(effect.getValue());
      if (loop->isAncestor(root.getParentBlock()->getParentOp()))
        continue;
      (write ? accesses.writes : accesses.reads).insert(root);
    }
    return WalkResult::advance();
  });
  if (result.wasInterrupted())
    return failure();
  return accesses;
}

/// Whether neither loop writes a buffer the other accesses.
static bool independent(const Accesses &a, const Accesses &b) {
  auto meets = [](const llvm::SmallPtrSet<Value, 8> &writes,
                  const Accesses &other) {
    return llvm::any_of(writes, [&](Value buffer) {
      return other.reads.contains(buffer) || other.writes.contains(buffer);
    });
  };
  return !meets(a.writes, b) && !meets(b.writes, a);
}

/// A 1-D loop on buffers from 0 by 1, with no mapping.
static bool isMergeable(scf::ForallOp loop) {
  return loop.getRank() == 1 && loop.getNumResults() == 0 &&
         loop.isNormalized() && !loop.getMapping();
}

/// The loop after `first` that it can merge with: the next op, past ops
/// without side effects, when it is a mergeable forall independent of it.
static scf::ForallOp findSibling(scf::ForallOp first) {
  Operation *next = first->getNextNode();
  while (next && isMemoryEffectFree(next) && next->getNumRegions() == 0)
    next = next->getNextNode();
  auto second = dyn_cast_or_null<scf::ForallOp>(next);
  if (!second || !isMergeable(second))
    return nullptr;
  FailureOr<Accesses> a = collectAccesses(first);
  FailureOr<Accesses> b = collectAccesses(second);
  if (failed(a) || failed(b) || !independent(*a, *b))
    return nullptr;
  return second;
}

/// Clones the body of `loop` (without its terminator) where `builder` is,
/// with the induction variable bound to `iv`.
static void cloneBody(OpBuilder &builder, scf::ForallOp loop, Value iv) {
  IRMapping mapping;
  mapping.map(loop.getInductionVars()[0], iv);
  for (Operation &op : loop.getBody()->without_terminator())
    builder.clone(op, mapping);
}

/// Replaces `first` and `second` by one loop; returns it.
static scf::ForallOp merge(RewriterBase &rewriter, scf::ForallOp first,
                           scf::ForallOp second) {
  // The ops between the loops have no side effects and do not depend on
  // the first loop (it has no results): they move above it.
  while (first->getNextNode() != second)
    rewriter.moveOpBefore(first->getNextNode(), first);
  Location loc = first.getLoc();
  rewriter.setInsertionPoint(first);
  Value n1 = getValueOrCreateConstantIndexOp(rewriter, loc,
                                             first.getMixedUpperBound()[0]);
  Value n2 = getValueOrCreateConstantIndexOp(rewriter, loc,
                                             second.getMixedUpperBound()[0]);
  Value total = arith::AddIOp::create(rewriter, loc, n1, n2);
  auto merged = scf::ForallOp::create(
      rewriter, loc, ArrayRef<OpFoldResult>{total}, ValueRange{}, std::nullopt);
  rewriter.setInsertionPointToStart(merged.getBody());
  Value j = merged.getInductionVars()[0];
  Value inFirst =
      arith::CmpIOp::create(rewriter, loc, arith::CmpIPredicate::ult, j, n1);
  scf::IfOp::create(
      rewriter, loc, inFirst,
      [&](OpBuilder &b, Location l) {
        cloneBody(b, first, j);
        scf::YieldOp::create(b, l);
      },
      [&](OpBuilder &b, Location l) {
        cloneBody(b, second, arith::SubIOp::create(b, l, j, n1));
        scf::YieldOp::create(b, l);
      });
  rewriter.eraseOp(first);
  rewriter.eraseOp(second);
  return merged;
}

namespace {
struct MergeSiblingForallsPass
    : moe::impl::MergeSiblingForallsBase<MergeSiblingForallsPass> {
  void runOnOperation() override {
    SmallVector<scf::ForallOp> loops;
    getOperation().walk([&](scf::ForallOp loop) {
      if (isMergeable(loop))
        loops.push_back(loop);
    });
    IRRewriter rewriter(&getContext());
    llvm::SmallPtrSet<Operation *, 8> erased;
    for (scf::ForallOp loop : loops) {
      if (erased.contains(loop))
        continue;
      // A merged loop may merge again with the next one.
      scf::ForallOp current = loop;
      while (scf::ForallOp sibling = findSibling(current)) {
        erased.insert(current);
        erased.insert(sibling);
        current = merge(rewriter, current, sibling);
      }
    }
  }
};
} // namespace
