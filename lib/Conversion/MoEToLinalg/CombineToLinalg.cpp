//===- CombineToLinalg.cpp - Lower moe.combine ------------------*- C++ -*-===//
//
// This file lowers moe.combine: a loop over the slots that adds each gated
// expert output row into its token's row of an f32 accumulator (sparse), or
// the matmul init + weights * outputs accumulated in f32 (Soft MoE).
//
//===----------------------------------------------------------------------===//

#include "Patterns.h"
#include "moe/Dialect/MoE/Utils/LoweringBuilder.h"

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

namespace {

/// Collapses the leading dims of `value` into one: [E, C, D] -> [E*C, D],
/// [E, C] -> [E*C]; rank-1 and grouped [N, D] values are returned as is.
static Value collapseSlots(LoweringBuilder &b, Value value, unsigned slotRank) {
  auto type = cast<RankedTensorType>(value.getType());
  if (slotRank == 1)
    return value;
  SmallVector<ReassociationIndices> reassociation = {{0, 1}};
  if (type.getRank() == 3)
    reassociation.push_back({2});
  return tensor::CollapseShapeOp::create(b, value, reassociation);
}

struct CombineOpLowering : OpConversionPattern<CombineOp> {
  CombineOpLowering(MLIRContext *ctx, bool byToken)
      : OpConversionPattern(ctx), byToken(byToken) {}

  LogicalResult
  matchAndRewrite(CombineOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LoweringBuilder b(op.getLoc(), rewriter);
    Type f32 = b.getF32Type();
    Value init = adaptor.getInit();
    Type resultElementType = getElementTypeOrSelf(init.getType());
    Value acc = b.convertElements(init, f32);
    Value outputs = adaptor.getExpertOutputs();
    Value weights = adaptor.getWeights();

    if (Value indices = adaptor.getIndices()) {
      unsigned slotRank = cast<RankedTensorType>(indices.getType()).getRank();
      Value ids = collapseSlots(b, indices, slotRank);
      Value gates = collapseSlots(b, weights, slotRank);
      Value rows = collapseSlots(b, outputs, slotRank);
      Value sum;
      if (byToken) {
        // A token fills at most one slot per expert ([E, C]), or exactly
        // top_k = N / T of the grouped layout.
        // (Operands are named before they are used: C++ leaves the order in
        // which arguments are evaluated open, and the IR must not depend on
        // the compiler that built the pass.)
        Value most;
        if (slotRank == 2) {
          most = b.sizeValue(indices, 0);
        } else {
          Value slots = b.sizeValue(ids, 0);
          Value tokens = b.sizeValue(acc, 0);
          Value one = b.indexConst(1);
          Value atLeastOne = arith::MaxUIOp::create(b, tokens, one);
          most = arith::CeilDivUIOp::create(b, slots, atLeastOne);
        }
        sum = b.gatherAddRows(acc, ids, gates, rows, most);
      } else {
        sum = b.scatterAddRows(acc, ids, gates, rows);
      }
      rewriter.replaceOp(op, b.convertElements(sum, resultElementType));
      return success();
    }

    // Soft MoE: acc[t, d] += sum_j weights[t, j] * outputs[j, d].
    Value slots = collapseSlots(b, outputs, 2);
    Value sum = b.accumulateProducts(weights, {0, 2}, slots, {2, 1}, acc);
    rewriter.replaceOp(op, b.convertElements(sum, resultElementType));
    return success();
  }

  bool byToken;
};

} // namespace

void mlir::moe::detail::populateCombineToLinalgPatterns(
    RewritePatternSet &patterns, bool byToken) {
  patterns.add<CombineOpLowering>(patterns.getContext(), byToken);
}
