//===- InitAllDialects.cpp - moe-mlir dialect registration ------*- C++ -*-===//
//
// This file registers the `moe` dialect, alone or with everything upstream
// that MoE layers are written in and lowered through.
//
//===----------------------------------------------------------------------===//

#include "moe/InitAllDialects.h"

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"

void mlir::moe::registerMoEDialect(DialectRegistry &registry) {
  registry.insert<moe::MoEDialect>();
}

void mlir::moe::registerAllDialects(DialectRegistry &registry) {
  registerMoEDialect(registry);
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
}
