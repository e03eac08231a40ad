//===- GPUPipeline.cpp - moe-gpu-pipeline -----------------------*- C++ -*-===//
//
// This file builds the NVIDIA GPU lowering of moe layers from the reference
// linalg lowering (expert bodies on static tiles), our loop-to-launch mapping
// and upstream's GPU-to-NVVM pipeline, and registers it as moe-gpu-pipeline.
//
//===----------------------------------------------------------------------===//

#include "moe/Pipelines/Pipelines.h"

#include "moe/Conversion/Passes.h"

#include "PipelineParts.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"

#include <cstdlib>

using namespace mlir;

static std::string libdevicePath(StringRef cudaPath) {
  return (cudaPath + "/nvvm/libdevice/libdevice.10.bc").str();
}

std::string mlir::moe::getDefaultCUDAPath() {
  for (const char *name : {"CUDA_HOME", "CUDA_PATH"})
    if (const char *value = std::getenv(name))
      if (*value)
        return value;
#ifdef MOE_CUDA_TOOLKIT_DIR
  return MOE_CUDA_TOOLKIT_DIR;
#else
  return "/usr/local/cuda";
#endif
}

/// The PTX ISA version (as in +ptxNN) that first supports `sm`.
static int minimumPTXVersion(int sm, bool archSpecific) {
  if (sm >= 120)
    return 87;
  if (sm >= 100)
    return 86;
  if (sm == 90)
    return archSpecific ? 80 : 78;
  if (sm == 89)
    return 78;
  if (sm == 87)
    return 74;
  if (sm == 86)
    return 71;
  if (sm == 80)
    return 70;
  if (sm >= 75)
    return 63;
  return 60;
}

LogicalResult
mlir::moe::verifyGPUPipelineOptions(const GPUPipelineOptions &options,
                                    std::string &message) {
  StringRef chip = options.chip;
  int sm = 0;
  bool archSpecific = chip.consume_back("a");
  if (!chip.consume_front("sm_") || chip.getAsInteger(10, sm) || sm < 50) {
    message = "chip '" + options.chip.getValue() +
              "' is not an NVIDIA architecture; use sm_XY such as sm_80 or "
              "sm_90a";
    return failure();
  }
  int ptx = 0;
  for (StringRef feature : llvm::split(StringRef(options.features), ',')) {
    feature = feature.trim();
    if (feature.empty())
      continue;
    if (!feature.consume_front("+ptx") || feature.getAsInteger(10, ptx)) {
      message = "feature '" + feature.str() +
                "' is not understood; features are +ptxNN (the PTX ISA "
                "version), e.g. +ptx80";
      return failure();
    }
  }
  int needed = minimumPTXVersion(sm, archSpecific);
  if (ptx != 0 && ptx < needed) {
    message = "chip " + options.chip.getValue() + " needs PTX ISA " +
              std::to_string(needed / 10) + "." + std::to_string(needed % 10) +
              " or later; use features=+ptx" + std::to_string(needed) +
              " (or newer)";
    return failure();
  }
  if (!llvm::sys::fs::exists(libdevicePath(options.cudaPath))) {
    message = "no libdevice at '" + libdevicePath(options.cudaPath) +
              "': the NVPTX kernels need the CUDA toolkit's libdevice for "
              "math functions; set cuda-path= (or CUDA_HOME) to the toolkit";
    return failure();
  }
  StringRef format = options.format;
  if (format != "isa" && format != "bin" && format != "fatbin") {
    message = "format '" + format.str() + "' is not one of isa, bin, fatbin";
    return failure();
  }
  if (format != "isa" &&
      !llvm::sys::fs::can_execute(options.cudaPath + "/bin/ptxas")) {
    message = "format=" + format.str() + " needs ptxas, which is not at '" +
              options.cudaPath +
              "/bin/ptxas'; set cuda-path= or use "
              "format=isa";
    return failure();
  }
  if (options.blockSize < 32 || options.blockSize > 1024 ||
      options.blockSize % 32 != 0) {
    message = "block-size must be a multiple of 32 in [32, 1024], got " +
              std::to_string(options.blockSize);
    return failure();
  }
  if (options.maxBlocks < 1 || options.tileRows < 1) {
    message = "max-blocks and tile-rows must be positive";
    return failure();
  }
  if (options.optLevel < 0 || options.optLevel > 3) {
    message = "opt-level must be in [0, 3]";
    return failure();
  }
  return success();
}

void mlir::moe::detail::buildGPUMappingPipeline(
    OpPassManager &pm, const GPUPipelineOptions &options, bool tensorCores) {
  // moe -> linalg on tensors, expert bodies on static tiles.
  ConvertMoEToLinalgOptions toLinalg;
  toLinalg.expertTileRows = options.tileRows;
  toLinalg.combineByToken = true;
  toLinalg.parallelRouting = true;
  // A warp per routing maximum and rank; one lane in the emulation, whose
  // blocks have one thread.
  toLinalg.warpLanes = tensorCores ? 32 : 1;
  pm.addNestedPass<func::FuncOp>(createConvertMoEToLinalg(toLinalg));
  // Elementwise producers fold into their consumers: fewer launches and
  // buffers, the same arithmetic per element.
  pm.addPass(createLinalgElementwiseOpFusionPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());

  // Tensors -> buffers; entry points take identity-layout descriptors.
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  pm.addPass(createCanonicalizerPass());

  // Buffers -> parallel loops -> launches.
  // f16 block GEMMs become warp-level mma tiles before the rest become
  // loops.
  GPUTensorCoreMatmulsOptions mma;
  mma.mmaSync = tensorCores;
  pm.addNestedPass<func::FuncOp>(createGPUTensorCoreMatmuls(mma));
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToParallelLoopsPass());
  pm.addNestedPass<func::FuncOp>(createForallToParallelLoopPass());
  pm.addPass(createCanonicalizerPass());
  MapLoopsToGPUOptions mapping;
  mapping.blockSize = options.blockSize;
  mapping.maxBlocks = options.maxBlocks;
  pm.addNestedPass<func::FuncOp>(createMapLoopsToGPU(mapping));
  // Parallel loops nested in a thread's work run sequentially.
  pm.addPass(createParallelForToNestedForsPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createCanonicalizerPass());
}

void mlir::moe::buildGPUPipeline(OpPassManager &pm,
                                 const GPUPipelineOptions &options) {
  detail::buildGPUMappingPipeline(pm, options, /*tensorCores=*/true);
  if (options.emitCInterface)
    pm.addNestedPass<func::FuncOp>(LLVM::createLLVMRequestCWrappersPass());

  // Kernels -> NVVM -> gpu.binary; host -> LLVM dialect. Upstream's
  // gpu-lower-to-nvvm-pipeline in its order, spelled out so that libdevice
  // and the toolkit come from `cuda-path` rather than from the PATH.
  pm.addPass(createConvertNVGPUToNVVMPass());
  pm.addPass(createGpuKernelOutliningPass());
  // One stream per call: launches, allocations and frees in order, one
  // wait before returning.
  pm.addNestedPass<func::FuncOp>(createGpuAsyncRegionPass());
  pm.addPass(createConvertVectorToSCFPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertNVVMToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  GpuNVVMAttachTargetOptions target;
  target.chip = options.chip;
  target.features = options.features;
  target.optLevel = options.optLevel;
  target.linkLibs.push_back(libdevicePath(options.cudaPath));
  pm.addPass(createGpuNVVMAttachTarget(target));
  pm.addPass(createLowerAffinePass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  OpPassManager &kernels = pm.nest<gpu::GPUModuleOp>();
  kernels.addPass(createConvertGpuOpsToNVVMOps());
  kernels.addPass(createCanonicalizerPass());
  kernels.addPass(createCSEPass());
  kernels.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createGpuToLLVMConversionPass());
  GpuModuleToBinaryPassOptions binary;
  binary.toolkitPath = options.cudaPath;
  binary.compilationTarget = options.format;
  pm.addPass(createGpuModuleToBinaryPass(binary));
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void mlir::moe::buildGPUEmulationPipeline(OpPassManager &pm,
                                          const GPUPipelineOptions &options) {
  // One thread per block makes running a block's threads in sequence exact.
  GPUPipelineOptions mapping;
  mapping.copyOptionValuesFrom(options);
  mapping.blockSize = 1;
  // The warp-level contractions stay vector ops, which the host runs.
  detail::buildGPUMappingPipeline(pm, mapping, /*tensorCores=*/false);
  pm.addNestedPass<func::FuncOp>(createEmulateGPULaunches());
  pm.addPass(createCanonicalizerPass());
  detail::buildLoopsToLLVMPipeline(pm, /*openmp=*/false,
                                   options.emitCInterface);
}

void mlir::moe::registerGPUPipeline() {
  detail::registerModulePipeline<GPUPipelineOptions>(
      "moe-gpu-pipeline",
      "Lower moe layers to NVIDIA GPU kernels (embedded in a gpu.binary) and "
      "host code in the LLVM dialect that launches them through the mgpu* "
      "functions of MoECUDARuntime",
      buildGPUPipeline, verifyGPUPipelineOptions);
  detail::registerModulePipeline<GPUPipelineOptions>(
      "moe-gpu-emulation-pipeline",
      "Map moe layers to GPU launches as moe-gpu-pipeline does (one thread "
      "per block), then run the launches as loops on the host CPU: checks "
      "the GPU mapping without a GPU",
      buildGPUEmulationPipeline, verifyGPUPipelineOptions);
}
