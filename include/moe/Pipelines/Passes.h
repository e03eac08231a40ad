//===- Passes.h - moe pipeline passes ---------------------------*- C++ -*-===//
//
// This file declares the passes of the pipelines (moe-cpu-codegen,
// moe-checked-entry-points) and their registration.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PIPELINES_PASSES_H
#define MOE_PIPELINES_PASSES_H

#include "moe/Pipelines/CPUCodegen.h"
#include "moe/Pipelines/CheckedEntryPoints.h"
#include "moe/Pipelines/MergeSiblingForalls.h"
#include "moe/Pipelines/OpenMPSchedule.h"

namespace mlir::moe {

#define GEN_PASS_REGISTRATION
#include "moe/Pipelines/Passes.h.inc"

} // namespace mlir::moe

#endif // MOE_PIPELINES_PASSES_H
