//===- CPUPipeline.cpp - moe-cpu-pipeline -----------------------*- C++ -*-===//
//
// This file builds the CPU lowering of moe layers from upstream passes and
// registers it as `moe-cpu-pipeline`.
//
//===----------------------------------------------------------------------===//

#include "moe/Pipelines/Pipelines.h"

#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Pipelines/CPUCodegen.h"
#include "moe/Pipelines/CPUTarget.h"
#include "moe/Pipelines/CheckedEntryPoints.h"
#include "moe/Pipelines/MergeSiblingForalls.h"
#include "moe/Pipelines/OpenMPSchedule.h"

#include "PipelineParts.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Conversion/VectorToSCF/VectorToSCF.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/Threading.h"

#include <algorithm>

using namespace mlir;

LogicalResult
mlir::moe::verifyCPUPipelineOptions(const CPUPipelineOptions &options,
                                    std::string &message) {
  if (options.tileRows < 1 || options.tileRows > kMaxCPUTileRows) {
    message = "tile-rows must be in [1, " + std::to_string(kMaxCPUTileRows) +
              "], got " + std::to_string(options.tileRows);
    return failure();
  }
  if (options.threads < 0 || options.threads > kMaxCPUThreads) {
    message = "threads must be in [0, " + std::to_string(kMaxCPUThreads) +
              "] (0: every core), got " + std::to_string(options.threads);
    return failure();
  }
  if (options.packedStorage != "f32" && options.packedStorage != "bf16" &&
      options.packedStorage != "i8" && options.packedStorage != "i4") {
    message = "packed-storage must be f32, bf16, i8 or i4, got '" +
              options.packedStorage + "'";
    return failure();
  }
  if (options.packedGroup < 1) {
    message =
        "packed-group must be >= 1, got " + std::to_string(options.packedGroup);
    return failure();
  }
  if (options.packedActivations != "f32" &&
      (options.packedActivations != "i8" || options.packedStorage != "i4" ||
       options.packedGroup % 4 != 0)) {
    message = "packed-activations must be f32, or i8 with packed-storage=i4 "
              "and a packed-group that is a multiple of 4, got '" +
              options.packedActivations +
              "' (packed-storage=" + options.packedStorage +
              ", packed-group=" + std::to_string(options.packedGroup) + ")";
    return failure();
  }
  if (options.packedScales != "f32" &&
      (options.packedScales != "f16" ||
       (options.packedStorage != "i8" && options.packedStorage != "i4"))) {
    message = "packed-scales must be f32, or f16 with packed-storage=i8 or "
              "i4, got '" +
              options.packedScales +
              "' (packed-storage=" + options.packedStorage + ")";
    return failure();
  }
  std::string error;
  if (!getCPUMicroKernel(options.targetCpu, error)) {
    message = error;
    return failure();
  }
  return success();
}

int64_t mlir::moe::resolveCPUThreads(int64_t threads) {
  if (threads > 0)
    return threads;
  unsigned cores = llvm::get_physical_cores();
  if (int(cores) <= 0)
    cores = llvm::hardware_concurrency().compute_thread_count();
  return std::clamp<int64_t>(cores, 1, kMaxCPUThreads);
}

void mlir::moe::buildCPUPipeline(OpPassManager &pm,
                                 const CPUPipelineOptions &options) {
  int64_t threads = resolveCPUThreads(options.threads);
  std::string error;
  const CPUMicroKernel *kernel = getCPUMicroKernel(options.targetCpu, error);
  // (verifyCPUPipelineOptions rejected unknown CPUs; this is a fallback for
  // callers that did not verify.)
  if (!kernel)
    kernel = &getCPUMicroKernels().back();
  if (options.packWeights) {
    MoEPackExpertWeightsOptions pack;
    pack.panel = kernel->cols;
    pack.storage = options.packedStorage;
    pack.group = options.packedGroup;
    pack.activations = options.packedActivations;
    pack.scales = options.packedScales;
    pm.addPass(createMoEPackExpertWeights(pack));
  }
  // moe -> linalg, tensor, scf on tensors.
  if (options.fused) {
    ConvertMoEToFusedLinalgOptions fusedOptions;
    // Unset, the tile is a multiple of the kernel's row block.
    fusedOptions.tileRows = options.tileRows.hasValue()
                                ? int64_t(options.tileRows)
                                : kernel->tileRows();
    fusedOptions.rowBlock = kernel->rows;
    pm.addNestedPass<func::FuncOp>(createConvertMoEToFusedLinalg(fusedOptions));
  } else {
    pm.addNestedPass<func::FuncOp>(createConvertMoEToLinalg());
  }
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  bool vectorize = options.fused && options.vectorize;
  if (vectorize) {
    pm.addPass(createCPUCodegenPass(CPUCodegenStage::Vectorize, threads,
                                    options.targetCpu));
    pm.addPass(createCanonicalizerPass());
  }

  // Tensors -> buffers, with function boundaries in identity layout so that
  // entry points take plain strided memref descriptors.
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  if (options.resultsToOutParams) {
    bufferization::BufferResultsToOutParamsPassOptions outParams;
    outParams.modifyPublicFunctions = true;
    outParams.hoistStaticAllocs = true;
    pm.addPass(bufferization::createBufferResultsToOutParamsPass(outParams));
  }
  bufferization::BufferDeallocationPipelineOptions deallocation;
  bufferization::buildBufferDeallocationPipeline(pm, deallocation);
  if (vectorize)
    pm.addPass(createCPUCodegenPass(CPUCodegenStage::Lower, threads,
                                    options.targetCpu));
  // On buffers, after deallocation (the twins' zero results on error belong
  // to the caller) and while linalg ops still show which sizes are tied.
  if (options.checkedEntryPoints) {
    if (options.emitCInterface)
      pm.addNestedPass<func::FuncOp>(LLVM::createLLVMRequestCWrappersPass());
    pm.addPass(createCheckedEntryPoints());
  }

  // Buffers -> loops.
  bool parallel = threads > 1;
  if (parallel) {
    // Threads take whole row tiles of an expert when it has enough of them,
    // column panels of each contraction otherwise.
    if (options.fused) {
      ParallelExpertTilesOptions tiles;
      tiles.minTiles = threads;
      pm.addNestedPass<func::FuncOp>(createParallelExpertTiles(tiles));
    }
    // The panel loops of independent projections (gate and up) as one.
    pm.addNestedPass<func::FuncOp>(createMergeSiblingForalls());
    pm.addNestedPass<func::FuncOp>(createForallToParallelLoopPass());
    ConvertSCFToOpenMPPassOptions openmp;
    openmp.numThreads = threads;
    pm.addPass(createConvertSCFToOpenMPPass(openmp));
    // Iterations to whichever thread is free (a VM's cores run unevenly).
    pm.addPass(createOpenMPDynamicSchedule());
    // Inlines the memref.alloca_scope the conversion wraps loop bodies in
    // (they hold no allocas here), which would not survive scf-to-cf.
    pm.addPass(createCanonicalizerPass());
  } else {
    pm.addNestedPass<func::FuncOp>(createForallToForLoopPass());
  }
  detail::buildLoopsToLLVMPipeline(pm, parallel, options.emitCInterface);
}

void mlir::moe::detail::buildLoopsToLLVMPipeline(OpPassManager &pm, bool openmp,
                                                 bool emitCInterface) {
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  pm.addPass(createLowerAffinePass());
  // Unrolled, so that no transfer needs a stack temporary inside a loop.
  pm.addPass(createConvertVectorToSCFPass(
      VectorTransferToSCFOptions().enableFullUnroll()));
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createCanonicalizerPass());

  // Loops -> LLVM dialect. bf16 conversions are expanded to integer
  // arithmetic (x86 has no native bf16 conversion in the base ISA); math
  // ops without an LLVM intrinsic (erf) become libm calls.
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = true;
  pm.addPass(arith::createArithExpandOpsPass(expand));
  pm.addPass(memref::createExpandStridedMetadataPass());
  // expand-strided-metadata computes offsets with affine.apply.
  pm.addPass(createLowerAffinePass());
  // Before math-to-libm, so that the libm declarations get no wrappers.
  if (emitCInterface)
    pm.addNestedPass<func::FuncOp>(LLVM::createLLVMRequestCWrappersPass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createConvertVectorToLLVMPass());
  if (openmp)
    pm.addPass(createConvertOpenMPToLLVMPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createUBToLLVMConversionPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void mlir::moe::registerCPUPipeline() {
  // Registered by hand rather than with PassPipelineRegistration so that a
  // pipeline anchored on something other than a module is an error, not an
  // abort while nesting module passes.
  detail::registerModulePipeline<CPUPipelineOptions>(
      "moe-cpu-pipeline",
      "Lower moe layers to the LLVM dialect for the CPU (entry points with "
      "llvm.emit_c_interface; run with mlir-runner or translate to LLVM IR)",
      buildCPUPipeline, verifyCPUPipelineOptions);
}
