//===- MoEPlugin.cpp - moe-mlir as an mlir-opt plugin -----------*- C++ -*-===//
//
// This file makes moe-mlir loadable into a stock mlir-opt of the same LLVM:
//   mlir-opt --load-dialect-plugin=MoEPlugin.so --load-pass-plugin=MoEPlugin.so
// after which it parses moe IR and runs the moe passes and pipelines.
//
//===----------------------------------------------------------------------===//

#include "moe/InitAllDialects.h"
#include "moe/InitAllPasses.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/Plugins/DialectPlugin.h"
#include "mlir/Tools/Plugins/PassPlugin.h"
#include "llvm/Config/llvm-config.h"

using namespace mlir;

extern "C" LLVM_ATTRIBUTE_WEAK DialectPluginLibraryInfo
mlirGetDialectPluginInfo() {
  return {
      MLIR_PLUGIN_API_VERSION, "MoE", LLVM_VERSION_STRING,
      [](DialectRegistry *registry) { moe::registerMoEDialect(*registry); }};
}

extern "C" LLVM_ATTRIBUTE_WEAK PassPluginLibraryInfo mlirGetPassPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "MoEPasses", LLVM_VERSION_STRING,
          []() { moe::registerAllPasses(); }};
}
