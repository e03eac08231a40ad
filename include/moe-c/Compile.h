/*===-- moe-c/Compile.h - Running moe pipelines from C ------------*- C -*-===*\
|*                                                                            *|
|* Running a textual pipeline on a module, and compiling a module's text to  *|
|* a shared library in one call. Failures return a failed MlirLogicalResult   *|
|* and hand every diagnostic (with its location) to the callback; nothing is  *|
|* printed and nothing aborts.                                                *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef MOE_C_COMPILE_H
#define MOE_C_COMPILE_H

#include "mlir-c/IR.h"
#include "mlir-c/Support.h"

#ifdef __cplusplus
extern "C" {
#endif

/// Runs the textual `pipeline` (e.g. "builtin.module(moe-cpu-pipeline)") on
/// `module`. The passes must be registered (moeRegisterAllPasses). The text
/// of the diagnostics, if any, is passed to `diagnostics` (may be NULL).
MLIR_CAPI_EXPORTED MlirLogicalResult
moeRunPassPipeline(MlirModule module, MlirStringRef pipeline,
                   MlirStringCallback diagnostics, void *userData);

/// Parses `moduleText` in a fresh context, lowers it with
/// moe-cpu-pipeline{`options`} (options may be empty, e.g.
/// "results-to-out-params=false"), and builds the shared library
/// `outputPath` whose functions have `_mlir_ciface_` entry points. Unless
/// `options` say checked-entry-points=false, each public `f` also gets
/// `_mlir_ciface_f_checked`, which validates the descriptors and returns a
/// MoeEntryStatus (moe-c/Entry.h) instead of running on bad ones. Needs a
/// clang (clang-22, or $MOE_CLANG) at run time.
MLIR_CAPI_EXPORTED MlirLogicalResult moeCompileToSharedLibrary(
    MlirStringRef moduleText, MlirStringRef options, MlirStringRef outputPath,
    MlirStringCallback diagnostics, void *userData);

#ifdef __cplusplus
}
#endif

#endif /* MOE_C_COMPILE_H */
