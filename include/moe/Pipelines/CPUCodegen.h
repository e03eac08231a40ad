//===- CPUCodegen.h - Vector code for the fused expert tiles ----*- C++ -*-===//
//
// This file declares the pass that turns the contractions of the fused
// expert tiles into register-blocked vector code with upstream's tiling,
// vectorization and vector lowerings, in two stages around bufferization.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PIPELINES_CPUCODEGEN_H
#define MOE_PIPELINES_CPUCODEGEN_H

#include "mlir/Pass/Pass.h"

#include <memory>

namespace mlir::moe {

/// The stages of the CPU codegen.
enum class CPUCodegenStage {
  /// On tensors: tile the marked contractions of the fused expert tiles to
  /// the register block and vectorize them to vector.contract.
  Vectorize,
  /// On buffers: keep the accumulators in registers across the reduction
  /// loop (hoist their transfers) and lower contractions to FMAs.
  Lower,
};

#define GEN_PASS_DECL_CPUCODEGEN
#include "moe/Pipelines/Passes.h.inc"

/// Creates moe-cpu-codegen running `stage` with the micro-kernel of
/// `targetCpu` (empty: the host's, CPUTarget.h); with `threads` > 1, each
/// unpacked contraction's columns are split into that many panels computed
/// by an scf.forall.
std::unique_ptr<Pass> createCPUCodegenPass(CPUCodegenStage stage,
                                           int64_t threads = 1,
                                           StringRef targetCpu = "");

} // namespace mlir::moe

#endif // MOE_PIPELINES_CPUCODEGEN_H
