//===- moe-opt.cpp - the mlir-opt of moe-mlir -------------------*- C++ -*-===//
//
// This file is the entry point of moe-opt: mlir-opt with every upstream
// dialect, extension and pass, plus the `moe` dialect and its passes.
//
//===----------------------------------------------------------------------===//

#include "moe/InitAllDialects.h"
#include "moe/InitAllPasses.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  mlir::moe::registerAllPasses();

  mlir::DialectRegistry registry;
  mlir::moe::registerAllDialects(registry);

  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "moe-mlir optimizer driver\n", registry));
}
