//===- PipelineParts.h - Pieces shared by the pipelines ---------*- C++ -*-===//
//
// This file declares pass sequences that more than one pipeline builds on.
//
//===----------------------------------------------------------------------===//

#ifndef LIB_PIPELINES_PIPELINEPARTS_H
#define LIB_PIPELINES_PIPELINEPARTS_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

#include <string>

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

/// Registers a pipeline anchored on builtin.module with typed `Options`:
/// unknown options, options `verify` rejects (it fills the message) and
/// another anchor are errors with a message, not aborts.
template <typename Options>
void registerModulePipeline(StringRef name, StringRef description,
                            void (*build)(OpPassManager &, const Options &),
                            LogicalResult (*verify)(const Options &,
                                                    std::string &) = nullptr) {
  std::string pipeline = name.str();
  registerPassPipeline(
      name, description,
      [pipeline, build,
       verify](OpPassManager &pm, StringRef optionText,
               function_ref<LogicalResult(const Twine &)> errorHandler) {
        auto options = std::make_unique<Options>();
        std::string errors;
        llvm::raw_string_ostream stream(errors);
        if (failed(options->parseFromString(optionText, stream)))
          return errorHandler("invalid options for '" + pipeline + "': '" +
                              optionText + "': " + errors);
        std::string message;
        if (verify && failed(verify(*options, message)))
          return errorHandler("invalid options for '" + pipeline +
                              "': " + message);
        StringRef anchor = pm.getOpAnchorName();
        if (anchor != OpPassManager::getAnyOpAnchorName() &&
            anchor != ModuleOp::getOperationName())
          return errorHandler("'" + pipeline +
                              "' runs on 'builtin.module', not on '" + anchor +
                              "'");
        build(pm, *options);
        return success();
      },
      [](function_ref<void(const mlir::detail::PassOptions &)> handler) {
        handler(Options());
      });
}

} // namespace mlir::moe::detail

#endif // LIB_PIPELINES_PIPELINEPARTS_H
