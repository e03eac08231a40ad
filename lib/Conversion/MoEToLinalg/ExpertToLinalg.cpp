//===- ExpertToLinalg.cpp - Lower moe.expert --------------------*- C++ -*-===//
//
// This file lowers moe.expert to an scf.forall over the experts whose body is
// the expert region, applied to the expert's rows and weight slices and
// written back with tensor.parallel_insert_slice. The body's own ops
// (linalg on tensors) are lowered by the rest of the pipeline.
//
//===----------------------------------------------------------------------===//

#include "ExpertBody.h"
#include "Patterns.h"
#include "moe/Dialect/MoE/Utils/LoweringBuilder.h"

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

namespace {

struct ExpertOpLowering : OpConversionPattern<ExpertOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(ExpertOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto resultType = cast<RankedTensorType>(op.getResult().getType());
    if (resultType.isDynamicDim(resultType.getRank() - 1))
      return op.emitOpError("cannot be lowered: the expert output feature "
                            "size must be static, got ")
             << resultType;

    LoweringBuilder b(op.getLoc(), rewriter);
    Value inputs = adaptor.getInputs();
    bool grouped = op.isGrouped();
    int64_t numExperts = grouped ? op.getOffsets().getType().getDimSize(0) - 1
                                 : resultType.getDimSize(0);
    SmallVector<OpFoldResult> resultSizes;
    for (unsigned dim = 0; dim + 1 < resultType.getRank(); ++dim)
      resultSizes.push_back(b.size(inputs, dim));
    resultSizes.push_back(b.getIndexAttr(resultType.getShape().back()));
    Value init = b.empty(resultSizes, resultType.getElementType());

    auto forall = scf::ForallOp::create(
        b, ArrayRef<OpFoldResult>{b.getIndexAttr(numExperts)}, ValueRange{init},
        std::nullopt);
    Value expert = forall.getInductionVars()[0];
    Value shared = forall.getRegionIterArgs()[0];
    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPoint(forall.getTerminator());
    LoweringBuilder lb(op.getLoc(), rewriter);

    // The expert's rows: [R, D] of [E, R, D], or rows offsets[e] to
    // offsets[e+1] of [N, D].
    OpFoldResult zero = lb.getIndexAttr(0), one = lb.getIndexAttr(1);
    RankedTensorType rowsType = op.getExpertRowsType();
    SmallVector<OpFoldResult> rowOffsets, rowSizes, rowStrides;
    if (grouped) {
      Value offsets = adaptor.getOffsets();
      auto read = [&](Value index) {
        return arith::IndexCastOp::create(
            lb, lb.getIndexType(),
            tensor::ExtractOp::create(lb, offsets, ValueRange{index}));
      };
      Value start = read(expert);
      Value end = read(arith::AddIOp::create(lb, expert, lb.indexConst(1)));
      Value count = arith::SubIOp::create(lb, end, start);
      rowOffsets = {start, zero};
      rowSizes = {count, lb.size(inputs, 1)};
      rowStrides = {one, one};
    } else {
      rowOffsets = {expert, zero, zero};
      rowSizes = {one, lb.size(inputs, 1), lb.size(inputs, 2)};
      rowStrides = {one, one, one};
    }
    Value rows = tensor::ExtractSliceOp::create(
        lb, rowsType, inputs, rowOffsets, rowSizes, rowStrides);
    Value yielded = moe::detail::cloneExpertBody(rewriter, op, rows, expert,
                                                 adaptor.getWeights());

    // Write the expert's output rows back in parallel.
    SmallVector<OpFoldResult> outSizes = rowSizes;
    outSizes.back() = lb.getIndexAttr(resultType.getShape().back());
    rewriter.setInsertionPointToStart(forall.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(rewriter, op.getLoc(), yielded,
                                          shared, rowOffsets, outSizes,
                                          rowStrides);
    rewriter.replaceOp(op, forall.getResults());
    return success();
  }
};

} // namespace

void mlir::moe::detail::populateExpertToLinalgPatterns(
    RewritePatternSet &patterns) {
  patterns.add<ExpertOpLowering>(patterns.getContext());
}
