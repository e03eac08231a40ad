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

/// Registers the `moe` dialect alone.
void registerMoEDialect(DialectRegistry &registry);

/// Registers everything moe-opt knows into `registry`: the `moe` dialect,
/// every upstream dialect and its external interface models (which
/// one-shot bufferization and the lowerings rely on), and the upstream
/// extensions. A context with this registry can parse any MoE layer and
/// run every moe pass and pipeline.
void registerAllDialects(DialectRegistry &registry);

} // namespace mlir::moe

#endif // MOE_INITALLDIALECTS_H
