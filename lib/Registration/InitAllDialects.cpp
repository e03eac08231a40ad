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
#include "mlir/Target/LLVMIR/Dialect/All.h"

void mlir::moe::registerMoEDialect(DialectRegistry &registry) {
  registry.insert<moe::MoEDialect>();
}

void mlir::moe::registerAllDialects(DialectRegistry &registry) {
  registerMoEDialect(registry);
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary translates kernels to LLVM IR inside the pipeline.
  mlir::registerAllToLLVMIRTranslations(registry);
}
