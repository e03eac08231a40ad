//===- DispatchToLinalg.cpp - Lower moe.dispatch ----------------*- C++ -*-===//
//
// This file lowers moe.dispatch to a gather (a linalg.generic that reads the
// token rows through the ids) or, for Soft MoE, to the matmul
// slots = weights^T * tokens accumulated in f32.
//
//===----------------------------------------------------------------------===//

#include "Patterns.h"
#include "moe/Dialect/MoE/Utils/LoweringBuilder.h"

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

namespace {

struct DispatchOpLowering : OpConversionPattern<DispatchOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(DispatchOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LoweringBuilder b(op.getLoc(), rewriter);
    Value tokens = adaptor.getTokens();
    auto resultType = cast<RankedTensorType>(op.getResult().getType());
    Type elementType = resultType.getElementType();

    if (Value indices = adaptor.getIndices()) {
      // result[slot..., d] = tokens[indices[slot...], d].
      Value gathered = b.gatherRows(tokens, indices);
      rewriter.replaceOp(op, gathered);
      return success();
    }

    // Soft MoE: slots[j, d] = sum_t weights[t, j] * tokens[t, d] in f32.
    Value weights = adaptor.getWeights();
    Type f32 = b.getF32Type();
    OpFoldResult numSlots = b.size(weights, 1), modelDim = b.size(tokens, 1);
    Value acc = b.filled({numSlots, modelDim}, b.floatConst(f32, 0.0));
    Value slots = b.accumulateProducts(weights, {2, 0}, tokens, {2, 1}, acc);
    slots = b.convertElements(slots, elementType);
    SmallVector<ReassociationIndices> reassociation = {{0, 1}, {2}};
    Value expanded = tensor::ExpandShapeOp::create(
        b, resultType, slots, reassociation,
        ArrayRef<OpFoldResult>{b.getIndexAttr(resultType.getDimSize(0)),
                               b.getIndexAttr(resultType.getDimSize(1)),
                               modelDim});
    rewriter.replaceOp(op, expanded);
    return success();
  }
};

} // namespace

void mlir::moe::detail::populateDispatchToLinalgPatterns(
    RewritePatternSet &patterns) {
  patterns.add<DispatchOpLowering>(patterns.getContext());
}
