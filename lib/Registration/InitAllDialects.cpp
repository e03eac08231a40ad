//===- InitAllDialects.cpp - moe-mlir dialect registration ------*- C++ -*-===//
//
// This file registers the `moe` dialect and the upstream dialects an MoE
// layer is written in.
//
//===----------------------------------------------------------------------===//

#include "moe/InitAllDialects.h"

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"

void mlir::moe::registerAllDialects(DialectRegistry &registry) {
  registry.insert<moe::MoEDialect, arith::ArithDialect, func::FuncDialect,
                  linalg::LinalgDialect, math::MathDialect,
                  tensor::TensorDialect>();
}
