//===- LoopsToGPU.h - Map parallel loops to GPU launches --------*- C++ -*-===//
//
// This file declares moe-map-loops-to-gpu, which runs every access to tensor
// data of a bufferized function in gpu.launch ops.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_LOOPSTOGPU_LOOPSTOGPU_H
#define MOE_CONVERSION_LOOPSTOGPU_LOOPSTOGPU_H

#include "mlir/Pass/Pass.h"

namespace mlir::moe {

#define GEN_PASS_DECL_MAPLOOPSTOGPU
#define GEN_PASS_DECL_DUMPGPUOBJECTS
#define GEN_PASS_DECL_EMULATEGPULAUNCHES
#define GEN_PASS_DECL_GPUTENSORCOREMATMULS
#include "moe/Conversion/Passes.h.inc"

} // namespace mlir::moe

#endif // MOE_CONVERSION_LOOPSTOGPU_LOOPSTOGPU_H
