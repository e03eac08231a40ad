//===- Pipelines.h - moe lowering pipelines ---------------------*- C++ -*-===//
//
// This file declares the pipelines that lower moe layers to the LLVM dialect,
// with typed options and C++ builders for compilers that embed them.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PIPELINES_PIPELINES_H
#define MOE_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassOptions.h"
#include "mlir/Support/LLVM.h"

#include <string>

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
      llvm::cl::desc("Threads for the fused layer's row tiles and column "
                     "panels and the experts of the reference path, in "
                     "[0, 1024]: 0 = every core of the host (OpenMP; the "
                     "program then needs libomp)"),
      llvm::cl::init(0)};
  PassOptions::Option<std::string> targetCpu{
      *this, "target-cpu",
      llvm::cl::desc("The CPU whose micro-kernel the fused contractions use "
                     "(an x86-64 CPU name such as haswell or "
                     "skylake-avx512; empty or native: the host); build the "
                     "object code for the same CPU"),
      llvm::cl::init("")};
  PassOptions::Option<bool> packWeights{
      *this, "pack-weights",
      llvm::cl::desc("Add `<f>_pack_weights` and `<f>_packed` next to every "
                     "layer function (moe-pack-expert-weights, panels of "
                     "the target's micro-kernel width): pack the weights "
                     "once, then call the packed entry"),
      llvm::cl::init(false)};
  PassOptions::Option<std::string> packedStorage{
      *this, "packed-storage",
      llvm::cl::desc("With pack-weights: the element type of the packed f32 "
                     "weights: f32 (as they are), bf16 (rounded to "
                     "nearest even, widened back as the tiles read them), "
                     "i8 (quantized, one f32 scale per output column) or "
                     "i4 (4-bit, one f32 scale per packed-group rows and "
                     "column)"),
      llvm::cl::init("f32")};
  PassOptions::Option<int64_t> packedGroup{
      *this, "packed-group",
      llvm::cl::desc("With packed-storage=i4: rows along K per scale (32: "
                     "GGUF Q4_0's blocks, 128: AWQ/GPTQ g128); must divide "
                     "every packed weight's K"),
      llvm::cl::init(32)};
  PassOptions::Option<std::string> packedActivations{
      *this, "packed-activations",
      llvm::cl::desc("With packed-storage=i4: f32 (the tiles read the rows "
                     "as they are) or i8 (they quantize each row to int8 "
                     "per packed-group values and sum products in "
                     "integers: GGUF's Q8_0 x Q4_0, vpdpbusd on VNNI "
                     "hosts)"),
      llvm::cl::init("f32")};
  PassOptions::Option<std::string> packedScales{
      *this, "packed-scales",
      llvm::cl::desc("With packed-storage=i8 or i4: the scales' type, f32 "
                     "or f16 (with packed-storage=i4 packed-group=32 "
                     "packed-activations=i8: GGUF's Q4_0 block, 18 bytes "
                     "per 32 weights)"),
      llvm::cl::init("f32")};
  PassOptions::Option<int64_t> tileRows{
      *this, "tile-rows",
      llvm::cl::desc("Rows of an expert per tile on the fused path, in "
                     "[1, 4096] (default: 16 row blocks of the target's "
                     "micro-kernel, 64 on AVX-512, 96 on AVX2)"),
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
  PassOptions::Option<bool> checkedEntryPoints{
      *this, "checked-entry-points",
      llvm::cl::desc("Give every public function with a C interface a twin "
                     "`<name>_checked` that validates the memref descriptors "
                     "before running it and returns a status "
                     "(moe-checked-entry-points, moe-c/Entry.h); the "
                     "unchecked entry stays"),
      llvm::cl::init(true)};
};

/// The most rows of an expert per tile `moe-cpu-pipeline` takes (a tile
/// holds its rows' inputs, hidden activations and outputs at once; the
/// default is 16 row blocks of the micro-kernel).
constexpr int64_t kMaxCPUTileRows = 4096;
/// The most threads `moe-cpu-pipeline` takes.
constexpr int64_t kMaxCPUThreads = 1024;

/// The thread count `threads` stands for: itself, or the host's cores for
/// 0.
int64_t resolveCPUThreads(int64_t threads);

/// Checks that `options` are in range (tile-rows in [1, kMaxCPUTileRows],
/// threads in [0, kMaxCPUThreads], a known target-cpu); the message says
/// what to change.
LogicalResult verifyCPUPipelineOptions(const CPUPipelineOptions &options,
                                       std::string &message);

/// Builds `moe-cpu-pipeline` into `pm` (anchored on builtin.module): moe ->
/// linalg on tensors -> buffers -> loops -> LLVM dialect. The result can be
/// run by mlir-runner or translated to LLVM IR and compiled to a shared
/// library. The options must have passed verifyCPUPipelineOptions.
void buildCPUPipeline(OpPassManager &pm, const CPUPipelineOptions &options);

/// Registers `moe-cpu-pipeline` with the pass registry.
void registerCPUPipeline();

/// The CUDA toolkit moe-gpu-pipeline uses by default: $CUDA_HOME, else
/// $CUDA_PATH, else the one found when moe-mlir was built.
std::string getDefaultCUDAPath();

/// Options of `moe-gpu-pipeline`.
struct GPUPipelineOptions : public PassPipelineOptions<GPUPipelineOptions> {
  PassOptions::Option<std::string> chip{
      *this, "chip",
      llvm::cl::desc("NVIDIA GPU architecture of the kernels: sm_75, sm_80, "
                     "sm_86, sm_89, sm_90, sm_90a, sm_100, ..."),
      llvm::cl::init("sm_80")};
  PassOptions::Option<std::string> features{
      *this, "features",
      llvm::cl::desc("PTX features, e.g. +ptx80 (the PTX ISA version must "
                     "support the chip: ptx70 for sm_80, ptx78 for sm_90, "
                     "ptx80 for sm_90a)"),
      llvm::cl::init("+ptx80")};
  PassOptions::Option<std::string> format{
      *this, "format",
      llvm::cl::desc("What gpu-module-to-binary embeds: isa (PTX text, "
                     "compiled by the driver at load time), bin (cubin, "
                     "needs ptxas) or fatbin (cubin + PTX, needs ptxas and "
                     "fatbinary)"),
      llvm::cl::init("fatbin")};
  PassOptions::Option<int64_t> optLevel{
      *this, "opt-level",
      llvm::cl::desc("Optimization level of the NVPTX backend and ptxas"),
      llvm::cl::init(3)};
  PassOptions::Option<int64_t> blockSize{*this, "block-size",
                                         llvm::cl::desc("Threads per block"),
                                         llvm::cl::init(256)};
  PassOptions::Option<int64_t> maxBlocks{
      *this, "max-blocks",
      llvm::cl::desc("Most blocks of a launch over expert tiles (bounds "
                     "their scratch memory)"),
      llvm::cl::init(1024)};
  PassOptions::Option<int64_t> tileRows{
      *this, "tile-rows",
      llvm::cl::desc("Rows of an expert per static tile (one block's work)"),
      llvm::cl::init(16)};
  PassOptions::Option<bool> emitCInterface{
      *this, "emit-c-interface",
      llvm::cl::desc("Give every function an `_mlir_ciface_` wrapper that "
                     "takes memref descriptors by pointer"),
      llvm::cl::init(true)};
  PassOptions::Option<std::string> cudaPath{
      *this, "cuda-path",
      llvm::cl::desc("CUDA toolkit root: libdevice (math functions) from "
                     "nvvm/libdevice, ptxas and fatbinary from bin"),
      llvm::cl::init(getDefaultCUDAPath())};
};

/// Checks that `options` name a chip, features and format the NVPTX backend
/// and ptxas accept; the message says what to change.
LogicalResult verifyGPUPipelineOptions(const GPUPipelineOptions &options,
                                       std::string &message);

/// Builds `moe-gpu-pipeline` into `pm` (anchored on builtin.module): moe ->
/// linalg on tensors (expert bodies on static tiles) -> buffers -> parallel
/// loops -> gpu.launch (moe-map-loops-to-gpu) -> kernels outlined and
/// lowered to NVVM and a gpu.binary; host code to the LLVM dialect, calling
/// the `mgpu*` functions of the MoECUDARuntime library. The options must
/// have passed verifyGPUPipelineOptions.
void buildGPUPipeline(OpPassManager &pm, const GPUPipelineOptions &options);

/// Builds `moe-gpu-emulation-pipeline`: the launches of moe-gpu-pipeline
/// (with one thread per block) run as sequential loops on the host and the
/// whole module is lowered for the CPU, so that the GPU mapping can be run
/// and checked without a GPU. Slow; for tests.
void buildGPUEmulationPipeline(OpPassManager &pm,
                               const GPUPipelineOptions &options);

/// Registers `moe-gpu-pipeline` and `moe-gpu-emulation-pipeline` with the
/// pass registry.
void registerGPUPipeline();

} // namespace mlir::moe

#endif // MOE_PIPELINES_PIPELINES_H
