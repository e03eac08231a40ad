//===- InitAllPasses.cpp - moe-mlir pass registration -----------*- C++ -*-===//
//
// This file registers the moe passes and pipelines.
//
//===----------------------------------------------------------------------===//

#include "moe/InitAllPasses.h"

#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Pipelines/Passes.h"
#include "moe/Pipelines/Pipelines.h"

void mlir::moe::registerAllPasses() {
  registerMoEConversionPasses();
  registerMoEPasses();
  registerMoEPipelinesPasses();
  registerCPUPipeline();
  registerGPUPipeline();
}
