//===- LoopsToGPU.cpp - moe-map-loops-to-gpu --------------------*- C++ -*-===//
//
// This file maps a bufferized function whose work is in scf.parallel loops
// onto gpu.launch ops, so that every access to tensor data runs on the device
// and the host only sizes buffers and launches kernels:
//
// * a top-level parallel loop with nothing parallel inside becomes a flat
//   launch, one thread per iteration (the last loop dimension fastest, so
//   that neighbouring threads touch neighbouring elements);
// * a top-level parallel loop with parallel loops or allocations inside
//   becomes a launch whose blocks take its iterations in turn; the inner
//   parallel loops are spread over the block's threads, each followed by a
//   barrier, and its allocations become per-block slices of one device
//   buffer allocated by the host;
// * any other top-level op that touches memory runs in a one-block launch
//   the same way;
// * a run of top-level ops that pass device values to each other (what the
//   canonicalizer leaves of a loop with one iteration: a single token, a
//   single expert) is wrapped in a parallel loop of one iteration first, so
//   that it runs on the device as a whole;
// * host allocations become gpu.alloc and are freed at the end unless
//   returned.
//
// Upstream's convert-parallel-loops-to-gpu maps perfectly nested loops only;
// the expert tiles of a layer have several parallel loops in sequence, which
// need the barriers this pass inserts.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/LoopsToGPU/LoopsToGPU.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/DataLayoutInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MAPLOOPSTOGPU
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// True if `op` or anything nested in it writes memory or allocates.
static bool writesMemory(Operation *op) {
  bool writes = false;
  op->walk([&](Operation *nested) {
    if (isa<memref::AllocOp, memref::AllocaOp>(nested))
      return WalkResult::skip();
    // A warp's register-to-register matrix multiply (it does not declare
    // its lack of effects).
    if (isa<NVVM::MmaOp>(nested))
      return WalkResult::advance();
    auto effects = dyn_cast<MemoryEffectOpInterface>(nested);
    if (!effects) {
      if (!nested->hasTrait<OpTrait::HasRecursiveMemoryEffects>() &&
          !isPure(nested) && nested->getNumRegions() == 0) {
        writes = true;
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    }
    if (effects.hasEffect<MemoryEffects::Write>() ||
        effects.hasEffect<MemoryEffects::Free>()) {
      writes = true;
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return writes;
}

/// True if a value `op` uses comes from gpu.lane_id: a per-lane fragment of
/// a warp-level tile whose loop folded away (a single 16x8 tile), which all
/// 32 lanes of one warp must write, not thread 0 alone.
static bool dependsOnLane(Operation *op) {
  SmallVector<Operation *> worklist = {op};
  llvm::SmallPtrSet<Operation *, 16> seen;
  while (!worklist.empty()) {
    Operation *current = worklist.pop_back_val();
    if (!seen.insert(current).second)
      continue;
    if (isa<gpu::LaneIdOp>(current))
      return true;
    current->walk([&](Operation *nested) {
      for (Value operand : nested->getOperands())
        if (Operation *def = operand.getDefiningOp())
          worklist.push_back(def);
    });
  }
  return false;
}

/// True if `op` touches memory at all (so it must run on the device).
static bool touchesMemory(Operation *op) {
  // Calls stay on the host; the callee is mapped on its own.
  if (isa<memref::AllocOp, memref::AllocaOp, memref::DeallocOp, func::CallOp>(
          op))
    return false;
  if (isa<ViewLikeOpInterface>(op) || isa<memref::DimOp>(op) ||
      isa<memref::ExtractStridedMetadataOp>(op))
    return false;
  if (op->getNumRegions() > 0)
    return true;
  return !isMemoryEffectFree(op);
}

/// Ops whose lanes cooperate: all 32 lanes of a warp must run them together.
static bool isWarpLevel(Operation *op) {
  return isa<gpu::LaneIdOp, nvgpu::MmaSyncOp, NVVM::MmaOp>(op);
}

static bool containsParallelLoop(Operation *op) {
  bool found = false;
  op->walk([&](scf::ParallelOp nested) {
    if (nested != op)
      found = true;
  });
  return found;
}

struct Mapper {
  Mapper(func::FuncOp func, int64_t blockSize, int64_t maxBlocks,
         int64_t sharedMemoryBytes)
      : func(func), blockSize(blockSize), maxBlocks(maxBlocks),
        sharedMemoryBytes(sharedMemoryBytes),
        layout(DataLayout::closest(func)) {}

  LogicalResult run();

private:
  /// Host: trip counts of `loop`'s dimensions and their product.
  std::pair<SmallVector<Value>, Value>
  tripCounts(OpBuilder &b, scf::ParallelOp loop, const IRMapping &mapping);
  /// Splits a linear index into the loop's induction values (last fastest).
  void delinearize(OpBuilder &b, Location loc, Value linear,
                   scf::ParallelOp loop, ArrayRef<Value> counts,
                   IRMapping &mapping);

  LogicalResult mapFlat(scf::ParallelOp loop);
  LogicalResult mapBlocks(Operation *op, scf::ParallelOp loop);
  /// Clones the ops of `block` (but its terminator) into `b`, spreading the
  /// parallel loops over the block's threads.
  LogicalResult distribute(OpBuilder &b, Block &block, IRMapping &mapping);
  LogicalResult distributeOp(OpBuilder &b, Operation *op, IRMapping &mapping);

  func::FuncOp func;
  int64_t blockSize, maxBlocks, sharedMemoryBytes;
  DataLayout layout;
  // Inside the launch being built.
  Value threadId, blockSizeValue, blockId, numBlocksValue;
  // Per-block slices of host buffers that replace allocations in blocks.
  DenseMap<Operation *, std::pair<Value, Value>> hoisted; // buffer, bytes
  // Allocations that became workgroup attributions of the launch.
  DenseMap<Operation *, Value> sharedViews;
  SmallVector<Value> hostBuffers;
};

std::pair<SmallVector<Value>, Value>
Mapper::tripCounts(OpBuilder &b, scf::ParallelOp loop,
                   const IRMapping &mapping) {
  Location loc = loop.getLoc();
  SmallVector<Value> counts;
  Value total = arith::ConstantIndexOp::create(b, loc, 1);
  for (auto [lbValue, ubValue, stepValue] :
       llvm::zip(loop.getLowerBound(), loop.getUpperBound(), loop.getStep())) {
    Value lb = mapping.lookupOrDefault(lbValue);
    Value ub = mapping.lookupOrDefault(ubValue);
    Value step = mapping.lookupOrDefault(stepValue);
    Value span = arith::SubIOp::create(
        b, loc, arith::MaxSIOp::create(b, loc, ub, lb), lb);
    Value count = arith::CeilDivUIOp::create(b, loc, span, step);
    counts.push_back(count);
    total = arith::MulIOp::create(b, loc, total, count);
  }
  return {counts, total};
}

void Mapper::delinearize(OpBuilder &b, Location loc, Value linear,
                         scf::ParallelOp loop, ArrayRef<Value> counts,
                         IRMapping &mapping) {
  Value rest = linear;
  for (int64_t dim = counts.size() - 1; dim >= 0; --dim) {
    Value index = rest;
    if (dim > 0) {
      index = arith::RemUIOp::create(b, loc, rest, counts[dim]);
      rest = arith::DivUIOp::create(b, loc, rest, counts[dim]);
    }
    Value iv = arith::AddIOp::create(
        b, loc, mapping.lookupOrDefault(loop.getLowerBound()[dim]),
        arith::MulIOp::create(b, loc, index,
                              mapping.lookupOrDefault(loop.getStep()[dim])));
    mapping.map(loop.getInductionVars()[dim], iv);
  }
}

LogicalResult Mapper::mapFlat(scf::ParallelOp loop) {
  OpBuilder b(loop);
  Location loc = loop.getLoc();
  auto [counts, total] = tripCounts(b, loop, IRMapping());
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  Value threads = arith::ConstantIndexOp::create(b, loc, blockSize);
  Value blocks = arith::CeilDivUIOp::create(b, loc, total, threads);
  // An empty grid (no iterations) is skipped by the runtime.
  auto launch =
      gpu::LaunchOp::create(b, loc, blocks, one, one, threads, one, one);
  Block &body = launch.getBody().front();
  b.setInsertionPointToStart(&body);
  gpu::TerminatorOp::create(b, loc);
  b.setInsertionPointToStart(&body);
  Value linear = arith::AddIOp::create(
      b, loc,
      arith::MulIOp::create(b, loc, launch.getBlockIds().x,
                            launch.getBlockSizeX()),
      launch.getThreadIds().x);
  Value inside =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, linear, total);
  auto guard = scf::IfOp::create(b, loc, inside, /*withElse=*/false);
  b.setInsertionPointToStart(guard.thenBlock());
  IRMapping mapping;
  delinearize(b, loc, linear, loop, counts, mapping);
  for (Operation &op : loop.getBody()->without_terminator())
    b.clone(op, mapping);
  loop.erase();
  return success();
}

LogicalResult Mapper::mapBlocks(Operation *op, scf::ParallelOp loop) {
  OpBuilder b(op);
  Location loc = op->getLoc();
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  SmallVector<Value> counts;
  Value total = one;
  if (loop)
    std::tie(counts, total) = tripCounts(b, loop, IRMapping());
  Value numBlocks = arith::MinUIOp::create(
      b, loc, total, arith::ConstantIndexOp::create(b, loc, maxBlocks));

  // Allocations inside become shared memory or slices of one host buffer
  // per allocation.
  hoisted.clear();
  sharedViews.clear();
  SmallVector<Operation *> shared;
  int64_t sharedBudget = sharedMemoryBytes;
  WalkResult walk = op->walk([&](Operation *nested) -> WalkResult {
    if (!isa<memref::AllocOp, memref::AllocaOp>(nested))
      return WalkResult::advance();
    for (Operation *parent = nested->getParentOp(); parent != op;
         parent = parent->getParentOp())
      if (isa<scf::ParallelOp>(parent))
        return nested->emitOpError(
            "cannot be mapped to the GPU: an allocation inside a loop that "
            "is spread over threads; allocate it outside the loop");
    auto type = cast<MemRefType>(nested->getResult(0).getType());
    if (!type.getLayout().isIdentity() || type.getMemorySpace())
      return nested->emitOpError("cannot be mapped to the GPU: only "
                                 "allocations with the identity layout in "
                                 "the default memory space are supported");
    for (Value size : nested->getOperands())
      if (op->isAncestor(size.getParentBlock()->getParentOp()))
        return nested->emitOpError(
            "cannot be mapped to the GPU: its size is computed inside the "
            "loop; only sizes known before the loop can be preallocated");
    // Small enough static temporaries live in the block's shared memory.
    int64_t elementBytes =
        layout.getTypeSize(type.getElementType()).getFixedValue();
    if (type.hasStaticShape() &&
        type.getNumElements() * elementBytes <= sharedBudget) {
      sharedBudget -= type.getNumElements() * elementBytes;
      shared.push_back(nested);
      return WalkResult::advance();
    }
    Value bytes = arith::ConstantIndexOp::create(b, loc, elementBytes);
    unsigned dynamic = 0;
    for (int64_t dim : type.getShape())
      bytes = arith::MulIOp::create(
          b, loc, bytes,
          ShapedType::isDynamic(dim)
              ? nested->getOperand(dynamic++)
              : arith::ConstantIndexOp::create(b, loc, dim).getResult());
    // 256-byte slices keep every block's slice aligned for vector access.
    Value align = arith::ConstantIndexOp::create(b, loc, 256);
    bytes = arith::MulIOp::create(
        b, loc, arith::CeilDivUIOp::create(b, loc, bytes, align), align);
    auto bufferType =
        MemRefType::get({ShapedType::kDynamic}, b.getIntegerType(8));
    Value size = arith::MulIOp::create(b, loc, bytes, numBlocks);
    Value buffer =
        gpu::AllocOp::create(b, loc, bufferType, Type(), ValueRange(),
                             ValueRange{size}, ValueRange())
            .getMemref();
    hostBuffers.push_back(buffer);
    hoisted[nested] = {buffer, bytes};
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();

  SmallVector<Type> workgroupTypes;
  auto workgroup =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  for (Operation *alloc : shared) {
    auto type = cast<MemRefType>(alloc->getResult(0).getType());
    workgroupTypes.push_back(
        MemRefType::get(type.getShape(), type.getElementType(),
                        MemRefLayoutAttrInterface(), workgroup));
  }
  auto launch = gpu::LaunchOp::create(
      b, loc, numBlocks, one, one,
      arith::ConstantIndexOp::create(b, loc, blockSize), one, one,
      /*dynamicSharedMemorySize=*/nullptr, /*asyncTokenType=*/nullptr,
      /*asyncDependencies=*/{}, workgroupTypes);
  for (auto [alloc, attribution] :
       llvm::zip(shared, launch.getWorkgroupAttributions()))
    sharedViews[alloc] = attribution;
  Block &body = launch.getBody().front();
  b.setInsertionPointToStart(&body);
  gpu::TerminatorOp::create(b, loc);
  b.setInsertionPointToStart(&body);
  threadId = launch.getThreadIds().x;
  blockSizeValue = launch.getBlockSizeX();
  blockId = launch.getBlockIds().x;
  numBlocksValue = launch.getGridSizeX();

  LogicalResult result = success();
  // Blocks take the iterations in turn: iteration blockId, then
  // blockId + numBlocks, ...
  scf::ForOp::create(
      b, loc, blockId, total, numBlocksValue, ValueRange(),
      [&](OpBuilder &fb, Location floc, Value linear, ValueRange) {
        IRMapping mapping;
        if (loop) {
          delinearize(fb, floc, linear, loop, counts, mapping);
          result = distribute(fb, *loop.getBody(), mapping);
        } else {
          result = distributeOp(fb, op, mapping);
        }
        // The next iteration may overwrite what this one still reads.
        Block *current = fb.getInsertionBlock();
        if (current->empty() || !isa<gpu::BarrierOp>(current->back()))
          gpu::BarrierOp::create(fb, floc);
        scf::YieldOp::create(fb, floc);
      });
  if (failed(result))
    return failure();
  op->erase();
  return success();
}

LogicalResult Mapper::distribute(OpBuilder &b, Block &block,
                                 IRMapping &mapping) {
  for (Operation &op : block.without_terminator())
    if (failed(distributeOp(b, &op, mapping)))
      return failure();
  return success();
}

LogicalResult Mapper::distributeOp(OpBuilder &b, Operation *op,
                                   IRMapping &mapping) {
  Location loc = op->getLoc();
  // The block's shared memory, seen through a generic pointer (NVPTX infers
  // the shared address space back for the loads and stores).
  auto sharedIt = sharedViews.find(op);
  if (sharedIt != sharedViews.end()) {
    Value view = memref::MemorySpaceCastOp::create(
        b, loc, op->getResult(0).getType(), sharedIt->second);
    mapping.map(op->getResult(0), view);
    return success();
  }
  // A per-block slice of the preallocated host buffer.
  auto it = hoisted.find(op);
  if (it != hoisted.end()) {
    auto [buffer, bytes] = it->second;
    Value shift = arith::MulIOp::create(b, loc, blockId, bytes);
    SmallVector<Value> sizes;
    for (Value size : op->getOperands())
      sizes.push_back(mapping.lookupOrDefault(size));
    Value view = memref::ViewOp::create(b, loc, op->getResult(0).getType(),
                                        buffer, shift, sizes);
    mapping.map(op->getResult(0), view);
    return success();
  }
  if (isa<memref::DeallocOp>(op))
    return success();

  // Parallel loops: a loop over the linearized iterations, strided by the
  // block size, then a barrier.
  if (auto loop = dyn_cast<scf::ParallelOp>(op)) {
    if (loop.getNumResults() != 0)
      return loop.emitOpError("cannot be mapped to the GPU: parallel loops "
                              "with reductions are not supported");
    SmallVector<Value> counts;
    Value total;
    std::tie(counts, total) = tripCounts(b, loop, mapping);
    // Loops of warp-level vector contractions (moe-gpu-tensor-core-matmuls)
    // go to warps: all lanes of a warp run the same iteration.
    Value first = threadId, stride = blockSizeValue;
    bool warpLevel = false;
    loop.walk([&](Operation *nested) {
      if (isa<vector::ContractionOp>(nested) || isWarpLevel(nested))
        warpLevel = true;
    });
    if (warpLevel) {
      Value lanes = arith::ConstantIndexOp::create(b, loc, 32);
      first = arith::DivUIOp::create(b, loc, threadId, lanes);
      stride = arith::MaxUIOp::create(
          b, loc, arith::DivUIOp::create(b, loc, blockSizeValue, lanes),
          arith::ConstantIndexOp::create(b, loc, 1));
    }
    scf::ForOp::create(
        b, loc, first, total, stride, ValueRange(),
        [&](OpBuilder &fb, Location floc, Value linear, ValueRange) {
          IRMapping inner = mapping;
          delinearize(fb, floc, linear, loop, counts, inner);
          for (Operation &nested : loop.getBody()->without_terminator())
            fb.clone(nested, inner);
          scf::YieldOp::create(fb, floc);
        });
    gpu::BarrierOp::create(b, loc);
    return success();
  }

  // Uniform control flow around parallel loops: every thread runs it.
  if (containsParallelLoop(op) || !hoisted.empty() || !sharedViews.empty()) {
    bool holdsWork = containsParallelLoop(op);
    op->walk([&](Operation *nested) {
      if (hoisted.count(nested) || sharedViews.count(nested))
        holdsWork = true;
    });
    if (holdsWork) {
      // Every thread computes the same results (buffers, loaded values).
      auto yieldMapped = [&](Block &from, IRMapping &inner) {
        SmallVector<Value> values;
        for (Value value : from.getTerminator()->getOperands())
          values.push_back(inner.lookupOrDefault(value));
        scf::YieldOp::create(b, loc, values);
      };
      if (auto forOp = dyn_cast<scf::ForOp>(op)) {
        SmallVector<Value> inits;
        for (Value init : forOp.getInitArgs())
          inits.push_back(mapping.lookupOrDefault(init));
        auto newFor = scf::ForOp::create(
            b, loc, mapping.lookupOrDefault(forOp.getLowerBound()),
            mapping.lookupOrDefault(forOp.getUpperBound()),
            mapping.lookupOrDefault(forOp.getStep()), inits);
        IRMapping inner = mapping;
        inner.map(forOp.getInductionVar(), newFor.getInductionVar());
        for (auto [from, to] :
             llvm::zip(forOp.getRegionIterArgs(), newFor.getRegionIterArgs()))
          inner.map(from, to);
        {
          OpBuilder::InsertionGuard guard(b);
          Block *body = newFor.getBody();
          if (!body->empty() && body->back().hasTrait<OpTrait::IsTerminator>())
            body->back().erase();
          b.setInsertionPointToEnd(body);
          if (failed(distribute(b, *forOp.getBody(), inner)))
            return failure();
          yieldMapped(*forOp.getBody(), inner);
        }
        for (auto [from, to] :
             llvm::zip(forOp.getResults(), newFor.getResults()))
          mapping.map(from, to);
        return success();
      }
      if (auto ifOp = dyn_cast<scf::IfOp>(op)) {
        auto newIf =
            scf::IfOp::create(b, loc, ifOp.getResultTypes(),
                              mapping.lookupOrDefault(ifOp.getCondition()),
                              /*withElseRegion=*/!ifOp.getElseRegion().empty());
        auto fill = [&](Block *to, Block &from) -> LogicalResult {
          OpBuilder::InsertionGuard guard(b);
          if (!to->empty() && to->back().hasTrait<OpTrait::IsTerminator>())
            to->back().erase();
          b.setInsertionPointToEnd(to);
          IRMapping inner = mapping;
          if (failed(distribute(b, from, inner)))
            return failure();
          yieldMapped(from, inner);
          return success();
        };
        if (failed(fill(newIf.thenBlock(), *ifOp.thenBlock())))
          return failure();
        if (ifOp.elseBlock() &&
            failed(fill(newIf.elseBlock(), *ifOp.elseBlock())))
          return failure();
        for (auto [from, to] : llvm::zip(ifOp.getResults(), newIf.getResults()))
          mapping.map(from, to);
        return success();
      }
      return op->emitOpError("cannot be mapped to the GPU: parallel loops or "
                             "allocations nested in this op");
    }
  }

  // Other writes: thread 0 (the lanes of warp 0 for per-lane fragments),
  // then a barrier.
  if (writesMemory(op)) {
    if (op->getNumResults() != 0)
      return op->emitOpError("cannot be mapped to the GPU: it writes memory "
                             "and has results that every thread would need");
    Value first =
        dependsOnLane(op)
            ? arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, threadId,
                                    arith::ConstantIndexOp::create(b, loc, 32))
            : arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, threadId,
                                    arith::ConstantIndexOp::create(b, loc, 0));
    auto ifOp = scf::IfOp::create(b, loc, first, /*withElse=*/false);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
      b.clone(*op, mapping);
    }
    gpu::BarrierOp::create(b, loc);
    return success();
  }
  // Reads and arithmetic: every thread computes the same value.
  b.clone(*op, mapping);
  return success();
}

/// Rewrites memref.copy as a parallel loop of loads and stores, which the
/// mapping then spreads over threads like any other.
static void expandCopies(func::FuncOp func) {
  SmallVector<memref::CopyOp> copies;
  func.walk([&](memref::CopyOp copy) { copies.push_back(copy); });
  for (memref::CopyOp copy : copies) {
    OpBuilder b(copy);
    Location loc = copy.getLoc();
    auto type = cast<MemRefType>(copy.getSource().getType());
    Value zero = arith::ConstantIndexOp::create(b, loc, 0);
    Value one = arith::ConstantIndexOp::create(b, loc, 1);
    SmallVector<Value> lbs(type.getRank(), zero), steps(type.getRank(), one),
        ubs;
    for (int64_t dim = 0; dim < type.getRank(); ++dim)
      ubs.push_back(memref::DimOp::create(b, loc, copy.getSource(), dim));
    if (type.getRank() == 0) {
      Value value = memref::LoadOp::create(b, loc, copy.getSource());
      memref::StoreOp::create(b, loc, value, copy.getTarget());
    } else {
      scf::ParallelOp::create(
          b, loc, lbs, ubs, steps,
          [&](OpBuilder &pb, Location ploc, ValueRange ivs) {
            Value value =
                memref::LoadOp::create(pb, ploc, copy.getSource(), ivs);
            memref::StoreOp::create(pb, ploc, value, copy.getTarget(), ivs);
          });
    }
    copy.erase();
  }
}

/// Moves top-level loads whose values only device code uses next to those
/// uses, so that the host never reads device memory.
static void sinkLoads(Block &body) {
  for (Operation &op : llvm::make_early_inc_range(body)) {
    auto load = dyn_cast<memref::LoadOp>(op);
    if (!load)
      continue;
    for (OpOperand &use : llvm::make_early_inc_range(load->getUses())) {
      Operation *user = use.getOwner();
      if (user->getBlock() == &body)
        continue;
      OpBuilder b(user);
      use.set(b.clone(*load)->getResult(0));
    }
    if (load->use_empty())
      load->erase();
  }
}

/// The position in `positions` of the op of `body` that holds the last use
/// of `op`'s results (`op`'s own position if they have none).
static unsigned lastUse(Operation *op, Block &body,
                        const DenseMap<Operation *, unsigned> &positions) {
  unsigned last = positions.lookup(op);
  for (Value result : op->getResults())
    for (Operation *user : result.getUsers())
      if (Operation *ancestor = body.findAncestorOpInBlock(*user))
        last = std::max(last, positions.lookup(ancestor));
  return last;
}

/// Wraps each run of top-level device work that passes values from op to op
/// (a load, the arithmetic on it and the store of the result; a sequential
/// loop with results) in a parallel loop of one iteration, which the mapping
/// then launches like any other. Such runs are what the canonicalizer leaves
/// of a parallel loop with a single iteration (T = 1, E = 1, one lane per
/// warp reduction): mapped op by op, the host would need the loaded values.
/// Mapped as a whole, they are the work of one block, as the loop's single
/// iteration would have been. Host ops in a run that do not depend on device
/// values (constants, allocations, views) move before it; a host op that does
/// depend on one (an allocation sized by a loaded value, a call) cannot be
/// mapped.
static LogicalResult wrapDeviceValueRuns(Block &body) {
  SmallVector<Operation *> ops;
  DenseMap<Operation *, unsigned> positions;
  for (Operation &op : body) {
    positions[&op] = ops.size();
    ops.push_back(&op);
  }
  // Top-level ops that run on the device.
  llvm::SmallPtrSet<Operation *, 32> device;
  auto usesDeviceValue = [&](Operation *op) -> Operation * {
    Operation *producer = nullptr;
    op->walk([&](Operation *nested) {
      for (Value operand : nested->getOperands())
        if (Operation *def = operand.getDefiningOp())
          if (device.count(def)) {
            producer = def;
            return WalkResult::interrupt();
          }
      return WalkResult::advance();
    });
    return producer;
  };
  auto needsDevice = [&](Operation *producer, Operation *user) {
    InFlightDiagnostic diag =
        producer->emitOpError("cannot be mapped to the GPU: the host would "
                              "need a value that only the device can compute");
    diag.attachNote(user->getLoc()) << "needed here";
    return diag;
  };
  auto staysOnHost = [](Operation *op) {
    return isa<memref::AllocOp, memref::AllocaOp, memref::DeallocOp,
               func::CallOp>(op) ||
           op->hasTrait<OpTrait::IsTerminator>();
  };

  for (unsigned first = 0; first < ops.size(); ++first) {
    Operation *op = ops[first];
    Operation *producer = usesDeviceValue(op);
    if (!producer && !touchesMemory(op))
      continue;
    if (producer && staysOnHost(op))
      return needsDevice(producer, op);
    device.insert(op);
    unsigned last = lastUse(op, body, positions);
    if (last == first)
      continue;
    // Extend the run until nothing computed in it is used after it.
    SmallVector<Operation *> members = {op}, before, after;
    for (unsigned next = first + 1; next <= last; ++next) {
      Operation *candidate = ops[next];
      Operation *from = usesDeviceValue(candidate);
      if (from && staysOnHost(candidate))
        return needsDevice(from, candidate);
      if (!from && !touchesMemory(candidate)) {
        // Host work; frees stay after the device work that may use the
        // buffer, calls would run out of order with it.
        if (isa<func::CallOp>(candidate))
          return candidate->emitOpError(
              "cannot be mapped to the GPU: a call between device operations "
              "that pass values to each other");
        (isa<memref::DeallocOp>(candidate) ? after : before)
            .push_back(candidate);
        continue;
      }
      device.insert(candidate);
      members.push_back(candidate);
      last = std::max(last, lastUse(candidate, body, positions));
    }
    for (Operation *host : before)
      host->moveBefore(op);
    OpBuilder b(op);
    Location loc = op->getLoc();
    Value zero = arith::ConstantIndexOp::create(b, loc, 0);
    Value one = arith::ConstantIndexOp::create(b, loc, 1);
    auto wrapper = scf::ParallelOp::create(b, loc, ValueRange{zero},
                                           ValueRange{one}, ValueRange{one});
    for (Operation *member : members)
      member->moveBefore(wrapper.getBody()->getTerminator());
    for (Operation *host : llvm::reverse(after))
      host->moveAfter(wrapper);
    first = last;
  }
  return success();
}

LogicalResult Mapper::run() {
  expandCopies(func);
  if (!func.getBody().hasOneBlock())
    return func.emitOpError("cannot be mapped to the GPU: the body must be a "
                            "single block (run this before lowering to "
                            "control flow, or mark the function `moe.host`)");
  Block &body = func.getBody().front();
  if (blockSize % 32 != 0) {
    WalkResult warp = func.walk([](Operation *op) {
      return isWarpLevel(op) || isa<gpu::ShuffleOp>(op)
                 ? WalkResult::interrupt()
                 : WalkResult::advance();
    });
    if (warp.wasInterrupted())
      return func.emitOpError("cannot be mapped to the GPU with block-size=")
             << blockSize
             << ": it has warp-level ops (tensor-core tiles, lane ids, "
                "shuffles), which need whole warps; use a multiple of 32";
  }
  sinkLoads(body);
  if (failed(wrapDeviceValueRuns(body)))
    return failure();
  SmallVector<Operation *> ops;
  for (Operation &op : body.without_terminator())
    ops.push_back(&op);
  for (Operation *op : ops) {
    if (!touchesMemory(op))
      continue;
    for (Value result : op->getResults())
      if (!result.use_empty())
        return op->emitOpError("cannot be mapped to the GPU: the host would "
                               "need a value that only the device can "
                               "compute");
    auto loop = dyn_cast<scf::ParallelOp>(op);
    if (loop && loop.getNumResults() != 0)
      return op->emitOpError("cannot be mapped to the GPU: parallel loops "
                             "with reductions are not supported");
    bool nested = false;
    op->walk([&](Operation *inner) {
      // Warp-level ops need whole warps: a block launch, not a flat one.
      if (inner != op &&
          (isa<scf::ParallelOp, memref::AllocOp, memref::AllocaOp>(inner) ||
           isWarpLevel(inner)))
        nested = true;
    });
    if (loop && !nested) {
      if (failed(mapFlat(loop)))
        return failure();
      continue;
    }
    if (failed(mapBlocks(op, loop)))
      return failure();
  }

  // Host allocations live on the device; those not returned are freed
  // before returning.
  Operation *terminator = body.getTerminator();
  llvm::SmallPtrSet<Operation *, 8> returned;
  for (Value value : terminator->getOperands()) {
    while (Operation *def = value.getDefiningOp()) {
      returned.insert(def);
      auto view = dyn_cast<ViewLikeOpInterface>(def);
      if (!view)
        break;
      value = view.getViewSource();
    }
  }
  for (Operation &op : llvm::make_early_inc_range(body)) {
    if (!isa<memref::AllocOp, memref::AllocaOp>(op))
      continue;
    auto type = cast<MemRefType>(op.getResult(0).getType());
    OpBuilder b(&op);
    Value buffer =
        gpu::AllocOp::create(b, op.getLoc(), type, Type(), ValueRange(),
                             op.getOperands(), ValueRange())
            .getMemref();
    op.getResult(0).replaceAllUsesWith(buffer);
    if (!returned.count(&op))
      hostBuffers.push_back(buffer);
    op.erase();
  }
  for (Operation &op : llvm::make_early_inc_range(body))
    if (isa<memref::DeallocOp>(op))
      op.erase();
  OpBuilder b(terminator);
  for (Value buffer : hostBuffers)
    gpu::DeallocOp::create(b, terminator->getLoc(), Type(), ValueRange(),
                           buffer);
  return success();
}

struct MapLoopsToGPUPass : moe::impl::MapLoopsToGPUBase<MapLoopsToGPUPass> {
  using Base::Base;

  void runOnOperation() override {
    if (blockSize < 1 || blockSize > 1024) {
      getOperation()->emitError("moe-map-loops-to-gpu: block-size must be "
                                "in [1, 1024], got ")
          << static_cast<int64_t>(blockSize);
      return signalPassFailure();
    }
    if (maxBlocks < 1) {
      getOperation()->emitError("moe-map-loops-to-gpu: max-blocks must be "
                                "positive, got ")
          << static_cast<int64_t>(maxBlocks);
      return signalPassFailure();
    }
    // Host drivers (printing, say) stay as they are.
    if (getOperation()->hasAttr("moe.host") || getOperation().isExternal())
      return;
    if (sharedMemoryBytes < 0) {
      getOperation()->emitError("moe-map-loops-to-gpu: shared-memory-bytes "
                                "must not be negative, got ")
          << static_cast<int64_t>(sharedMemoryBytes);
      return signalPassFailure();
    }
    Mapper mapper(getOperation(), blockSize, maxBlocks, sharedMemoryBytes);
    if (failed(mapper.run()))
      signalPassFailure();
  }
};

} // namespace
