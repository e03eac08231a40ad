//===- Passes.h - moe conversion passes -------------------------*- C++ -*-===//
//
// This file declares every convert-moe-to-* pass and their registration.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_PASSES_H
#define MOE_CONVERSION_PASSES_H

#include "moe/Conversion/LoopsToGPU/LoopsToGPU.h"
#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h"

namespace mlir::moe {

#define GEN_PASS_REGISTRATION
#include "moe/Conversion/Passes.h.inc"

} // namespace mlir::moe

#endif // MOE_CONVERSION_PASSES_H
