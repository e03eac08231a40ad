//===- OpenMPSchedule.h - moe-openmp-dynamic-schedule ----------*- C++ -*-===//
//
// The pass that schedules the OpenMP work-sharing loops of a lowered layer
// dynamically.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PIPELINES_OPENMPSCHEDULE_H
#define MOE_PIPELINES_OPENMPSCHEDULE_H

#include "mlir/Dialect/OpenMP/OpenMPDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

#include <memory>

namespace mlir::moe {

#define GEN_PASS_DECL_OPENMPDYNAMICSCHEDULE
#include "moe/Pipelines/Passes.h.inc"

} // namespace mlir::moe

#endif // MOE_PIPELINES_OPENMPSCHEDULE_H
