//===- Dialects.cpp - C API of the moe dialect ------------------*- C++ -*-===//
//
// This file implements the registration entry points of the C API.
//
//===----------------------------------------------------------------------===//

#include "moe-c/Dialects.h"

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/InitAllDialects.h"
#include "moe/InitAllPasses.h"

#include "mlir/CAPI/IR.h"
#include "mlir/CAPI/Registration.h"

MLIR_DEFINE_CAPI_DIALECT_REGISTRATION(MoE, moe, mlir::moe::MoEDialect)

void moeRegisterAllDialects(MlirDialectRegistry registry) {
  mlir::moe::registerAllDialects(*unwrap(registry));
}

void moeRegisterAllPasses(void) { mlir::moe::registerAllPasses(); }
