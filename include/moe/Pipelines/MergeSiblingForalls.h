//===- MergeSiblingForalls.h - moe-merge-sibling-foralls --------*- C++ -*-===//
//
// The pass that runs independent neighbouring parallel loops on buffers as
// one loop over both iteration spaces.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PIPELINES_MERGESIBLINGFORALLS_H
#define MOE_PIPELINES_MERGESIBLINGFORALLS_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Pass/Pass.h"

#include <memory>

namespace mlir::moe {

#define GEN_PASS_DECL_MERGESIBLINGFORALLS
#include "moe/Pipelines/Passes.h.inc"

} // namespace mlir::moe

#endif // MOE_PIPELINES_MERGESIBLINGFORALLS_H
