//===- EmulateLaunches.cpp - moe-gpu-emulate-launches -----------*- C++ -*-===//
//
// This file runs gpu.launch ops as sequential loops on the host, so that the
// GPU mapping can be executed and checked on machines without a GPU.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/LoopsToGPU/LoopsToGPU.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"

namespace mlir::moe {
#define GEN_PASS_DEF_EMULATEGPULAUNCHES
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// Replaces `launch` by six nested scf.for loops (blocks z, y, x, then
/// threads z, y, x). Threads of a block run one after the other, which is
/// only a faithful schedule when the block has one thread or no barrier.
static LogicalResult emulate(gpu::LaunchOp launch) {
  bool hasBarrier = false;
  launch.walk([&](gpu::BarrierOp) { hasBarrier = true; });
  if (hasBarrier) {
    for (Value size : {launch.getBlockSizeX(), launch.getBlockSizeY(),
                       launch.getBlockSizeZ()})
      if (!matchPattern(size, m_One()))
        return launch.emitOpError(
            "cannot be emulated: it has barriers and more than one thread "
            "per block; map the loops with block-size=1");
  }
  OpBuilder b(launch);
  Location loc = launch.getLoc();
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  IRMapping mapping;
  gpu::KernelDim3 gridArgs = launch.getGridSize();
  gpu::KernelDim3 blockArgs = launch.getBlockSize();
  Value grid[3] = {launch.getGridSizeX(), launch.getGridSizeY(),
                   launch.getGridSizeZ()};
  Value block[3] = {launch.getBlockSizeX(), launch.getBlockSizeY(),
                    launch.getBlockSizeZ()};
  mapping.map(gridArgs.x, grid[0]);
  mapping.map(gridArgs.y, grid[1]);
  mapping.map(gridArgs.z, grid[2]);
  mapping.map(blockArgs.x, block[0]);
  mapping.map(blockArgs.y, block[1]);
  mapping.map(blockArgs.z, block[2]);
  Value ids[6] = {launch.getBlockIds().z,  launch.getBlockIds().y,
                  launch.getBlockIds().x,  launch.getThreadIds().z,
                  launch.getThreadIds().y, launch.getThreadIds().x};
  Value bounds[6] = {grid[2], grid[1], grid[0], block[2], block[1], block[0]};
  // Shared memory: one host buffer, reused by the blocks that run in turn.
  SmallVector<Value> buffers;
  for (BlockArgument attribution : launch.getWorkgroupAttributions()) {
    auto type = cast<MemRefType>(attribution.getType());
    if (!type.hasStaticShape())
      return launch.emitOpError("cannot be emulated: a workgroup attribution "
                                "of dynamic shape");
    Value buffer = memref::AllocOp::create(
        b, loc, MemRefType::get(type.getShape(), type.getElementType()));
    buffers.push_back(buffer);
    mapping.map(attribution, buffer);
  }
  if (!launch.getPrivateAttributions().empty())
    return launch.emitOpError("cannot be emulated: private attributions");
  for (int i = 0; i < 6; ++i) {
    auto loop = scf::ForOp::create(b, loc, zero, bounds[i], one);
    mapping.map(ids[i], loop.getInductionVar());
    b.setInsertionPoint(loop.getBody()->getTerminator());
  }
  for (Operation &op : launch.getBody().front().without_terminator()) {
    if (isa<gpu::BarrierOp>(op))
      continue;
    b.clone(op, mapping);
  }
  // Barriers nested in the cloned ops; casts of shared memory to the
  // default space, which the host buffers already are in.
  launch->getBlock()->walk([&](Operation *op) {
    if (launch->isAncestor(op))
      return;
    if (isa<gpu::BarrierOp>(op)) {
      op->erase();
      return;
    }
    auto cast = dyn_cast<memref::MemorySpaceCastOp>(op);
    if (cast && cast.getSource().getType() == cast.getResult().getType()) {
      cast.getResult().replaceAllUsesWith(cast.getSource());
      cast.erase();
    }
  });
  b.setInsertionPointAfter(launch);
  for (Value buffer : buffers)
    memref::DeallocOp::create(b, loc, buffer);
  launch.erase();
  return success();
}

struct EmulateGPULaunchesPass
    : moe::impl::EmulateGPULaunchesBase<EmulateGPULaunchesPass> {
  void runOnOperation() override {
    SmallVector<gpu::LaunchOp> launches;
    getOperation().walk([&](gpu::LaunchOp op) { launches.push_back(op); });
    for (gpu::LaunchOp launch : launches)
      if (failed(emulate(launch)))
        return signalPassFailure();
    // Device memory is host memory here.
    getOperation().walk([&](Operation *op) {
      OpBuilder b(op);
      if (auto alloc = dyn_cast<gpu::AllocOp>(op)) {
        Value buffer = memref::AllocOp::create(
            b, alloc.getLoc(), alloc.getMemref().getType(),
            alloc.getDynamicSizes(), alloc.getSymbolOperands());
        alloc.getMemref().replaceAllUsesWith(buffer);
        alloc.erase();
      } else if (auto dealloc = dyn_cast<gpu::DeallocOp>(op)) {
        memref::DeallocOp::create(b, dealloc.getLoc(), dealloc.getMemref());
        dealloc.erase();
      }
    });
  }
};

} // namespace
