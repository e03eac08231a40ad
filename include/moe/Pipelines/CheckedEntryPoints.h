//===- CheckedEntryPoints.h - Validating twins of C entries -----*- C++ -*-===//
//
// This file declares the pass that gives every function with a C interface
// a `_checked` twin validating its memref descriptors (moe-c/Entry.h says
// what the twin returns), and the builder of one twin.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PIPELINES_CHECKEDENTRYPOINTS_H
#define MOE_PIPELINES_CHECKEDENTRYPOINTS_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

#include <memory>

namespace mlir::moe {

#define GEN_PASS_DECL_CHECKEDENTRYPOINTS
#include "moe/Pipelines/Passes.h.inc"

/// The suffix of the checked twin's name.
constexpr llvm::StringLiteral kCheckedEntrySuffix = "_checked";

/// Builds `@<name>_checked` for `func` right after it, or fails (building
/// nothing) when `func` is no candidate: a declaration, private, without
/// `llvm.emit_c_interface`, with a twin already, or with an unranked or
/// non-identity memref argument, or a result that is neither such a memref
/// nor an integer, index or float.
FailureOr<func::FuncOp> buildCheckedEntryPoint(func::FuncOp func);

} // namespace mlir::moe

#endif // MOE_PIPELINES_CHECKEDENTRYPOINTS_H
