//===- CPUTarget.h - Micro-kernels per CPU ----------------------*- C++ -*-===//
//
// This file declares the table of the micro-kernels the CPU codegen tiles
// the fused expert contractions to, keyed by the features of the target CPU
// (the host's, or a named CPU's for cross-compiling).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PIPELINES_CPUTARGET_H
#define MOE_PIPELINES_CPUTARGET_H

#include "mlir/Support/LLVM.h"
#include "llvm/ADT/StringMap.h"

#include <string>

namespace mlir::moe {

/// One entry of the micro-kernel table: the register block of an f32
/// contraction C[M0, N0] += A[M0, K0] * B[K0, N0] and the cache blocking
/// around it. See docs/cpu-codegen.md for why each entry is what it is.
struct CPUMicroKernel {
  /// The entry's name (`avx512`, `avx2`, ...), as remarks and tests see it.
  const char *name;
  /// The features an entry needs, all of them (LLVM feature names).
  const char *const *features;
  /// The width of a vector register in bits.
  int64_t vectorBits;
  /// M0: rows of the register block (left-hand elements broadcast).
  int64_t rows;
  /// N0: columns of the register block, a multiple of the vector lanes; it
  /// is also the panel width of packed weights (#moe.packed).
  int64_t cols;
  /// K0: reduction steps per iteration of the innermost loop.
  int64_t depth;
  /// KC: the reduction block of tiles with more rows than kFewRows, so that
  /// a KC x N0 panel of the right-hand side stays in L1 while the row
  /// blocks sweep it.
  int64_t reductionBlock;
  /// How many KC blocks ahead a packed panel is prefetched into L2 while
  /// the row blocks compute (0: no software prefetch).
  int64_t prefetchBlocks;

  /// f32 lanes of a vector register.
  int64_t lanes() const { return vectorBits / 32; }
  /// Accumulator registers the register block holds.
  int64_t accumulators() const { return rows * cols / lanes(); }
  /// The default rows of an expert per fused tile: 16 row blocks, so that a
  /// tile's blocks divide it and amortize each KC block of the panel.
  int64_t tileRows() const { return 16 * rows; }
};

/// The table, best entry first; the last entry needs no feature.
ArrayRef<CPUMicroKernel> getCPUMicroKernels();

/// The first entry of the table whose features `features` all has.
const CPUMicroKernel &
selectCPUMicroKernel(const llvm::StringMap<bool> &features);

/// The entry for `targetCpu`: the host's features when it is empty or
/// `native`, else the features of that x86 CPU (`haswell`,
/// `skylake-avx512`, `x86-64`, ...). Null, with `error` set, when the CPU is
/// unknown.
const CPUMicroKernel *getCPUMicroKernel(StringRef targetCpu,
                                        std::string &error);

/// How the target sums products of unsigned and signed bytes into i32
/// lanes, four per lane (the 4-bit x int8 panels, moe.nibble_dot).
enum class CPUIntegerDot {
  /// AVX512-VNNI's vpdpbusd: one instruction per 64 products.
  Vnni512,
  /// AVX512-BW's vpmaddubsw (pairs to i16) then vpmaddwd by ones.
  Madd512,
  /// The same on AVX2's 256-bit registers.
  Madd256,
  /// Plain vector arithmetic (widen, multiply, add), any target.
  Generic,
};

/// The integer dot product of a target with `features`.
CPUIntegerDot selectCPUIntegerDot(const llvm::StringMap<bool> &features);

/// The integer dot product for `targetCpu` (as getCPUMicroKernel reads
/// it); Generic for an unknown CPU.
CPUIntegerDot getCPUIntegerDot(StringRef targetCpu);

/// The name remarks and tests see (`vnni512`, `madd512`, `madd256`,
/// `generic`).
StringRef stringifyCPUIntegerDot(CPUIntegerDot dot);

} // namespace mlir::moe

#endif // MOE_PIPELINES_CPUTARGET_H
