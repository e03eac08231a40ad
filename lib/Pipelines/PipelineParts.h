//===- PipelineParts.h - Pieces shared by the pipelines ---------*- C++ -*-===//
//
// This file declares pass sequences that more than one pipeline builds on.
//
//===----------------------------------------------------------------------===//

#ifndef LIB_PIPELINES_PIPELINEPARTS_H
#define LIB_PIPELINES_PIPELINEPARTS_H

namespace mlir {
class OpPassManager;
} // namespace mlir

namespace mlir::moe {
struct GPUPipelineOptions;
} // namespace mlir::moe

namespace mlir::moe::detail {

/// Loops on buffers (scf, linalg, vector, memref, OpenMP when `openmp`) ->
/// the LLVM dialect, for the host CPU.
void buildLoopsToLLVMPipeline(OpPassManager &pm, bool openmp,
                              bool emitCInterface);

/// moe on tensors -> buffers -> gpu.launch ops with host code around them:
/// the part of moe-gpu-pipeline before kernels are outlined. With
/// `tensorCores`, warp-level f16 contractions become nvgpu.mma.sync;
/// without, they stay vector.contract (which the emulation runs).
void buildGPUMappingPipeline(OpPassManager &pm,
                             const GPUPipelineOptions &options,
                             bool tensorCores);

} // namespace mlir::moe::detail

#endif // LIB_PIPELINES_PIPELINEPARTS_H
