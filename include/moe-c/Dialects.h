/*===-- moe-c/Dialects.h - C API of the moe dialect ---------------*- C -*-===*\
|*                                                                            *|
|* Registration of the moe dialect and of everything moe-opt knows, and of    *|
|* the moe passes and pipelines, on MLIR's C API conventions.                 *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef MOE_C_DIALECTS_H
#define MOE_C_DIALECTS_H

#include "mlir-c/IR.h"
#include "mlir-c/RegisterEverything.h"

#ifdef __cplusplus
extern "C" {
#endif

/// The handle of the moe dialect (mlirGetDialectHandle__moe__()).
MLIR_DECLARE_CAPI_DIALECT_REGISTRATION(MoE, moe);

/// Registers the moe dialect, every upstream dialect with its interface
/// models, and the upstream extensions: what a context needs to parse MoE
/// layers and run the moe pipelines.
MLIR_CAPI_EXPORTED void moeRegisterAllDialects(MlirDialectRegistry registry);

/// Registers the moe passes and pipelines (moe-cpu-pipeline, ...) with the
/// global pass registry, so that textual pipelines can name them.
MLIR_CAPI_EXPORTED void moeRegisterAllPasses(void);

#ifdef __cplusplus
}
#endif

#endif /* MOE_C_DIALECTS_H */
