//===- CPUTarget.cpp - Micro-kernels per CPU --------------------*- C++ -*-===//
//
// This file implements the micro-kernel table and its selection from the
// host's or a named CPU's features.
//
//===----------------------------------------------------------------------===//

#include "moe/Pipelines/CPUTarget.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/X86TargetParser.h"

using namespace mlir;
using namespace mlir::moe;

namespace {
const char *const kAvx512Bf16[] = {"avx512f", "avx512bf16", nullptr};
const char *const kAvx512[] = {"avx512f", nullptr};
const char *const kAvx2[] = {"avx2", "fma", nullptr};
const char *const kNone[] = {nullptr};

// Why these sizes (docs/cpu-codegen.md has the measurements):
// * AVX-512 (32 zmm): 6 rows x 4 zmm = 24 accumulators, 4 zmm of B and one
//   broadcast register (29 of 32); 24 FMAs per reduction step against 4
//   loads of B and 6 broadcasts. 4 rows (16 accumulators) covered the FMA
//   latency too but spent more of each step on loads: the Mixtral-like
//   layer ran 7-13 % slower. KC = 128: a 128 x 64 f32 panel (32 KiB) stays
//   in the 48 KiB L1.
// * AVX2 + FMA (16 ymm): 6 rows x 2 ymm = 12 accumulators, 2 of B, one
//   broadcast: BLIS's Haswell shape, 12 FMAs per step cover the 5-cycle
//   latency on two ports (4 x 16 had 8 accumulators and ran the Mixtral-like
//   layer 12 % slower). 3 ymm per row made LLVM widen vector<24xf32>
//   to 32 lanes and ran 3x slower. KC = 256 (16 KiB panel).
// * Without FMA: 4 x 8 on SSE registers, what the old single kernel was.
// * Prefetch: the next KC block of a packed panel, into L2, while the row
//   blocks compute on this one: the hardware prefetchers follow a stream
//   only while it is being read, so without it a tile waited for each
//   block's weights and then computed (fine-grained 18 % faster on AVX-512
//   and AVX2). Not measured without FMA: none there.
// The bf16 entry keeps the AVX-512 f32 tiles: it is the slot for the
// vdpbf16ps kernels of low-precision weights.
const CPUMicroKernel kTable[] = {
    {"avx512-bf16", kAvx512Bf16, 512, 6, 64, 4, 128, 1},
    {"avx512", kAvx512, 512, 6, 64, 4, 128, 1},
    {"avx2", kAvx2, 256, 6, 16, 4, 256, 1},
    {"sse", kNone, 128, 4, 8, 4, 256, 0},
};
} // namespace

ArrayRef<CPUMicroKernel> mlir::moe::getCPUMicroKernels() { return kTable; }

const CPUMicroKernel &
mlir::moe::selectCPUMicroKernel(const llvm::StringMap<bool> &features) {
  for (const CPUMicroKernel &entry : kTable) {
    bool all = true;
    for (const char *const *feature = entry.features; *feature; ++feature)
      all &= features.lookup(*feature);
    if (all)
      return entry;
  }
  return kTable[std::size(kTable) - 1];
}

/// The features of `targetCpu` (the host's when empty or `native`), or
/// none for a CPU LLVM does not know.
static std::optional<llvm::StringMap<bool>>
targetFeatures(StringRef targetCpu) {
  if (targetCpu.empty() || targetCpu == "native")
    return llvm::sys::getHostCPUFeatures();
  if (llvm::X86::parseArchX86(targetCpu, /*Only64Bit=*/true) ==
      llvm::X86::CK_None)
    return std::nullopt;
  SmallVector<StringRef> names;
  llvm::X86::getFeaturesForCPU(targetCpu, names, /*NeedPlus=*/false);
  llvm::StringMap<bool> features;
  for (StringRef name : names)
    features[name] = true;
  return features;
}

const CPUMicroKernel *mlir::moe::getCPUMicroKernel(StringRef targetCpu,
                                                   std::string &error) {
  std::optional<llvm::StringMap<bool>> features = targetFeatures(targetCpu);
  if (!features) {
    error = ("unknown target-cpu '" + targetCpu +
             "' (an x86-64 CPU name such as haswell, skylake-avx512, "
             "znver4, x86-64; or native)")
                .str();
    return nullptr;
  }
  return &selectCPUMicroKernel(*features);
}

CPUIntegerDot
mlir::moe::selectCPUIntegerDot(const llvm::StringMap<bool> &features) {
  if (features.lookup("avx512vnni") && features.lookup("avx512bw"))
    return CPUIntegerDot::Vnni512;
  if (features.lookup("avx512bw"))
    return CPUIntegerDot::Madd512;
  if (features.lookup("avx2"))
    return CPUIntegerDot::Madd256;
  return CPUIntegerDot::Generic;
}

CPUIntegerDot mlir::moe::getCPUIntegerDot(StringRef targetCpu) {
  std::optional<llvm::StringMap<bool>> features = targetFeatures(targetCpu);
  return features ? selectCPUIntegerDot(*features) : CPUIntegerDot::Generic;
}

StringRef mlir::moe::stringifyCPUIntegerDot(CPUIntegerDot dot) {
  switch (dot) {
  case CPUIntegerDot::Vnni512:
    return "vnni512";
  case CPUIntegerDot::Madd512:
    return "madd512";
  case CPUIntegerDot::Madd256:
    return "madd256";
  case CPUIntegerDot::Generic:
    return "generic";
  }
  llvm_unreachable("unknown integer dot product");
}
