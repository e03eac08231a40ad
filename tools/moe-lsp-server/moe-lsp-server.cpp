//===- moe-lsp-server.cpp - LSP server for moe-mlir -------------*- C++ -*-===//
//
// This file is the entry point of moe-lsp-server: the upstream MLIR language
// server with the same dialects as moe-opt, so editors understand `.mlir`
// files that use `moe`.
//
//===----------------------------------------------------------------------===//

#include "moe/InitAllDialects.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-lsp-server/MlirLspServerMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::moe::registerAllDialects(registry);
  return mlir::failed(mlir::MlirLspServerMain(argc, argv, registry));
}
