//===- InitAllPasses.h - moe-mlir pass registration -------------*- C++ -*-===//
//
// This file is the one place tools, plugins and the C API register the
// passes and pipelines of moe-mlir from.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_INITALLPASSES_H
#define MOE_INITALLPASSES_H

namespace mlir::moe {

/// Registers every moe pass and pipeline with the global pass registry.
void registerAllPasses();

} // namespace mlir::moe

#endif // MOE_INITALLPASSES_H
