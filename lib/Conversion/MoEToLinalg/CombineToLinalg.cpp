//===- CombineToLinalg.cpp - Lower moe.combine ------------------*- C++ -*-===//
//
// This file lowers moe.combine: a loop over the slots that adds each gated
// expert output row into its token's row of an f32 accumulator (sparse), or
// the matmul init + weights * outputs accumulated in f32 (Soft MoE).
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Utils/LoweringBuilder.h"
#include "Patterns.h"

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
  using OpConversionPattern::OpConversionPattern;

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
      Value numTokens = b.sizeValue(init, 0);
      OpFoldResult modelDim = b.size(init, 1);
      auto rowType = RankedTensorType::get(
          {cast<RankedTensorType>(init.getType()).getDimSize(1)}, f32);
      auto outRowType = RankedTensorType::get(
          {rowType.getDimSize(0)}, getElementTypeOrSelf(rows.getType()));
      OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);

      // Slots in order; each valid one adds gate * row into its token's row.
      auto loop = scf::ForOp::create(
          b, b.indexConst(0), b.sizeValue(ids, 0), b.indexConst(1),
          ValueRange{acc},
          [&](OpBuilder &ob, Location loc, Value slot, ValueRange args) {
            LoweringBuilder lb(loc, ob);
            Value id = arith::IndexCastOp::create(
                lb, lb.getIndexType(),
                tensor::ExtractOp::create(lb, ids, ValueRange{slot}));
            Value nonNegative = arith::CmpIOp::create(
                lb, arith::CmpIPredicate::sge, id, lb.indexConst(0));
            Value inRange = arith::CmpIOp::create(lb, arith::CmpIPredicate::slt,
                                                  id, numTokens);
            Value valid = arith::AndIOp::create(lb, nonNegative, inRange);
            auto ifOp = scf::IfOp::create(
                lb, valid,
                [&](OpBuilder &tb, Location tloc) {
                  LoweringBuilder tl(tloc, tb);
                  Value gate = tl.convertFloat(
                      tensor::ExtractOp::create(tl, gates, ValueRange{slot}),
                      f32);
                  SmallVector<OpFoldResult> strides = {one, one};
                  Value accRow = tensor::ExtractSliceOp::create(
                      tl, rowType, args[0], ArrayRef<OpFoldResult>{id, zero},
                      ArrayRef<OpFoldResult>{one, modelDim}, strides);
                  Value outRow = tensor::ExtractSliceOp::create(
                      tl, outRowType, rows, ArrayRef<OpFoldResult>{slot, zero},
                      ArrayRef<OpFoldResult>{one, modelDim}, strides);
                  Value updated = tl.generic(
                      outRow, {{0}}, accRow, {{0}}, 1, {},
                      [&](OpBuilder &gb, Location gloc, ValueRange g) {
                        LoweringBuilder gl(gloc, gb);
                        Value term = arith::MulFOp::create(
                            gl, gate, gl.convertFloat(g[0], f32));
                        linalg::YieldOp::create(
                            gl,
                            arith::AddFOp::create(gl, g[1], term).getResult());
                      })[0];
                  Value inserted = tensor::InsertSliceOp::create(
                      tl, updated, args[0], ArrayRef<OpFoldResult>{id, zero},
                      ArrayRef<OpFoldResult>{one, modelDim}, strides);
                  scf::YieldOp::create(tl, inserted);
                },
                [&](OpBuilder &eb, Location eloc) {
                  scf::YieldOp::create(eb, eloc, args[0]);
                });
            scf::YieldOp::create(lb, ifOp.getResult(0));
          });
      rewriter.replaceOp(
          op, b.convertElements(loop.getResult(0), resultElementType));
      return success();
    }

    // Soft MoE: acc[t, d] += sum_j weights[t, j] * outputs[j, d].
    Value slots = collapseSlots(b, outputs, 2);
    Value sum = b.accumulateProducts(weights, {0, 2}, slots, {2, 1}, acc);
    rewriter.replaceOp(op, b.convertElements(sum, resultElementType));
    return success();
  }
};

} // namespace

void mlir::moe::detail::populateCombineToLinalgPatterns(
    RewritePatternSet &patterns) {
  patterns.add<CombineOpLowering>(patterns.getContext());
}
