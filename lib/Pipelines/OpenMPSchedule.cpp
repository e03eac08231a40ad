//===- OpenMPSchedule.cpp - moe-openmp-dynamic-schedule ---------*- C++ -*-===//
//
// This file implements moe-openmp-dynamic-schedule: schedule(dynamic) on
// every omp.wsloop, so that an unevenly slowed thread does not hold the
// others at the loop's barrier.
//
//===----------------------------------------------------------------------===//

#include "moe/Pipelines/OpenMPSchedule.h"

namespace mlir::moe {
#define GEN_PASS_DEF_OPENMPDYNAMICSCHEDULE
#include "moe/Pipelines/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
struct OpenMPDynamicSchedulePass
    : public moe::impl::OpenMPDynamicScheduleBase<OpenMPDynamicSchedulePass> {
  void runOnOperation() override {
    auto dynamic = omp::ClauseScheduleKindAttr::get(
        &getContext(), omp::ClauseScheduleKind::Dynamic);
    getOperation()->walk(
        [&](omp::WsloopOp loop) { loop.setScheduleKindAttr(dynamic); });
  }
};
} // namespace
