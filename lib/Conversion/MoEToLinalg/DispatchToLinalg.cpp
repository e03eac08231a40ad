//===- DispatchToLinalg.cpp - Lower moe.dispatch ----------------*- C++ -*-===//
//
// This file lowers moe.dispatch to a gather (a linalg.generic that reads the
// token rows through the ids) or, for Soft MoE, to the matmul
// slots = weights^T * tokens accumulated in f32.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Utils/LoweringBuilder.h"
#include "Patterns.h"

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

/// Reads row `id` of `tokens` at column `d`, or zero when the id is not a
/// token (an empty slot).
static Value gatherElement(OpBuilder &b, Location loc, Value tokens,
                           Value numTokens, Value id, Value d) {
  LoweringBuilder lb(loc, b);
  Value index = arith::IndexCastOp::create(lb, lb.getIndexType(), id);
  Value zeroIndex = lb.indexConst(0);
  Value nonNegative =
      arith::CmpIOp::create(lb, arith::CmpIPredicate::sge, index, zeroIndex);
  Value inRange =
      arith::CmpIOp::create(lb, arith::CmpIPredicate::slt, index, numTokens);
  Value valid = arith::AndIOp::create(lb, nonNegative, inRange);
  Value row = arith::SelectOp::create(lb, valid, index, zeroIndex);
  Value value = tensor::ExtractOp::create(lb, tokens, ValueRange{row, d});
  Value zero = lb.floatConst(value.getType(), 0.0);
  return arith::SelectOp::create(lb, valid, value, zero);
}

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
      unsigned slotRank = cast<RankedTensorType>(indices.getType()).getRank();
      SmallVector<OpFoldResult> sizes;
      SmallVector<unsigned> slotDims, allDims;
      for (unsigned dim = 0; dim < slotRank; ++dim) {
        sizes.push_back(b.size(indices, dim));
        slotDims.push_back(dim);
      }
      sizes.push_back(b.size(tokens, 1));
      allDims = slotDims;
      allDims.push_back(slotRank);
      Value numTokens = b.sizeValue(tokens, 0);
      Value gathered = b.generic(
          indices, {slotDims}, b.empty(sizes, elementType), {allDims},
          slotRank + 1, {}, [&](OpBuilder &ob, Location loc, ValueRange args) {
            Value d = linalg::IndexOp::create(ob, loc, slotRank);
            linalg::YieldOp::create(
                ob, loc, gatherElement(ob, loc, tokens, numTokens, args[0], d));
          })[0];
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
