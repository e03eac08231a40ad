//===- MoEToLinalg.h - moe to linalg conversion -----------------*- C++ -*-===//
//
// This file declares the reference lowering of the moe dialect to linalg on
// tensors: the pass and its patterns, for reuse in other pipelines.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_MOETOLINALG_MOETOLINALG_H
#define MOE_CONVERSION_MOETOLINALG_MOETOLINALG_H

#include "mlir/Pass/Pass.h"

namespace mlir {
class RewritePatternSet;
} // namespace mlir

namespace mlir::moe {

#define GEN_PASS_DECL_CONVERTMOETOLINALG
#include "moe/Conversion/Passes.h.inc"

/// Adds the patterns that lower moe.route, moe.dispatch, moe.expert and
/// moe.combine to linalg, tensor, scf, arith and math on tensors.
void populateMoEToLinalgConversionPatterns(RewritePatternSet &patterns);

} // namespace mlir::moe

#endif // MOE_CONVERSION_MOETOLINALG_MOETOLINALG_H
