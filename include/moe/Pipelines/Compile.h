//===- Compile.h - Running pipelines and building libraries -----*- C++ -*-===//
//
// This file declares the helpers an embedding compiler calls to run a
// pipeline with its diagnostics captured, and to turn a MoE module into a
// shared library with C entry points.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PIPELINES_COMPILE_H
#define MOE_PIPELINES_COMPILE_H

#include "moe/Pipelines/Pipelines.h"

#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace mlir::moe {

/// Parses the textual `pipeline` (e.g.
/// "builtin.module(moe-cpu-pipeline{emit-c-interface=true})", or a bare
/// "moe-token-to-expert-choice,moe-cpu-pipeline" that then runs on the
/// module) and runs it on `module`. Errors in the pipeline text and every
/// diagnostic the passes emit are appended to `diagnostics` (with locations),
/// never printed.
LogicalResult runPipeline(ModuleOp module, StringRef pipeline,
                          std::string &diagnostics);

/// Lowers `module` with moe-cpu-pipeline, translates it to LLVM IR and
/// builds the shared library `outputPath` with clang (`-O3 -fno-unroll-loops
/// -march=native -shared`, or -march=$MOE_MARCH; linking
/// the MLIR C runner utilities). Every function gets its `_mlir_ciface_`
/// entry point and, with options.checkedEntryPoints (the default), every
/// public one a checked twin `_mlir_ciface_<name>_checked` returning a
/// MoeEntryStatus (moe-c/Entry.h; moe-checked-entry-points). clang is `$MOE_CLANG`, else clang-22 or clang on PATH, else
/// the one of the LLVM this was built with. Failures are described in
/// `diagnostics`.
LogicalResult compileToSharedLibrary(ModuleOp module,
                                     const CPUPipelineOptions &options,
                                     StringRef outputPath,
                                     std::string &diagnostics);

} // namespace mlir::moe

#endif // MOE_PIPELINES_COMPILE_H
