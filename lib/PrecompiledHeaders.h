//===- PrecompiledHeaders.h - Headers most of lib/ includes ---*- C++ -*-===//
//
// The upstream MLIR headers that most of lib/ includes, precompiled once
// per library with clang (MOE_PRECOMPILED_HEADERS, see CMakeLists.txt):
// parsing them was nine tenths of each file's compile time. Every file
// still includes what it uses itself; the g++ build, without them, checks.
//
//===----------------------------------------------------------------------===//

#ifndef LIB_PRECOMPILEDHEADERS_H
#define LIB_PRECOMPILEDHEADERS_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/DialectConversion.h"

#endif // LIB_PRECOMPILEDHEADERS_H
