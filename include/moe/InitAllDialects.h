//===- InitAllDialects.h - moe-mlir dialect registration --------*- C++ -*-===//
//
// This file is the one place tools, plugins and the C API register the
// dialects of moe-mlir from.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_INITALLDIALECTS_H
#define MOE_INITALLDIALECTS_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace mlir::moe {

/// Registers the `moe` dialect and the upstream dialects that MoE layers are
/// written in (func, arith, math, tensor, linalg) into `registry`.
void registerAllDialects(DialectRegistry &registry);

} // namespace mlir::moe

#endif // MOE_INITALLDIALECTS_H
