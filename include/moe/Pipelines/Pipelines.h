//===- Pipelines.h - moe lowering pipelines ---------------------*- C++ -*-===//
//
// This file declares the pipelines that lower moe layers to the LLVM dialect,
// with typed options and C++ builders for compilers that embed them.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PIPELINES_PIPELINES_H
#define MOE_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassOptions.h"

namespace mlir {
class OpPassManager;
} // namespace mlir

namespace mlir::moe {

/// Options of `moe-cpu-pipeline`.
struct CPUPipelineOptions : public PassPipelineOptions<CPUPipelineOptions> {
  PassOptions::Option<bool> fused{
      *this, "fused",
      llvm::cl::desc("Fuse each sparse layer's dispatch, expert and combine "
                     "(convert-moe-to-fused-linalg) instead of the op-by-op "
                     "reference lowering (convert-moe-to-linalg)"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> vectorize{
      *this, "vectorize",
      llvm::cl::desc("Tile the contractions of the fused expert tiles to "
                     "register blocks and lower them to vector FMAs "
                     "(with fused=true)"),
      llvm::cl::init(true)};
  PassOptions::Option<int64_t> threads{
      *this, "threads",
      llvm::cl::desc("Threads for the fused contractions' column panels and "
                     "the experts of the reference path (OpenMP; the "
                     "program then needs libomp)"),
      llvm::cl::init(1)};
  PassOptions::Option<int64_t> tileRows{
      *this, "tile-rows",
      llvm::cl::desc("Rows of an expert per tile on the fused path"),
      llvm::cl::init(64)};
  PassOptions::Option<bool> emitCInterface{
      *this, "emit-c-interface",
      llvm::cl::desc("Give every function an `_mlir_ciface_` wrapper that "
                     "takes memref descriptors by pointer"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> resultsToOutParams{
      *this, "results-to-out-params",
      llvm::cl::desc("Return memref results through caller-allocated "
                     "out-parameters appended to the arguments instead of "
                     "buffers the callee mallocs (and the caller frees); "
                     "only for results of static shape (a call with a "
                     "dynamically shaped result is an error)"),
      llvm::cl::init(false)};
};

/// Builds `moe-cpu-pipeline` into `pm` (anchored on builtin.module): moe ->
/// linalg on tensors -> buffers -> loops -> LLVM dialect. The result can be
/// run by mlir-runner or translated to LLVM IR and compiled to a shared
/// library.
void buildCPUPipeline(OpPassManager &pm, const CPUPipelineOptions &options);

/// Registers `moe-cpu-pipeline` with the pass registry.
void registerCPUPipeline();

} // namespace mlir::moe

#endif // MOE_PIPELINES_PIPELINES_H
