//===- ExpertToLinalg.cpp - Lower moe.expert --------------------*- C++ -*-===//
//
// This file lowers moe.expert to an scf.forall over the experts whose body is
// the expert region, applied to the expert's rows and weight slices and
// written back with tensor.parallel_insert_slice. The body's own ops
// (linalg on tensors) are lowered by the rest of the pipeline.
//
// With a tile size, a body written for a dynamic row count runs instead on
// padded tiles of a static row count, one per iteration of an scf.forall over
// (expert, tile): every temporary of the body then has a static shape, which
// is what a GPU block can hold.
//
//===----------------------------------------------------------------------===//

#include "ExpertBody.h"
#include "Patterns.h"
#include "moe/Dialect/MoE/Utils/LoweringBuilder.h"

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

namespace {

/// The tensor the experts write their output rows into. In the grouped
/// layout, rows no expert owns (only with offsets that do not cover [0, N),
/// which moe.route never makes) are read by the combine: they start as zero
/// rather than as uninitialized memory.
static Value initialOutputs(LoweringBuilder &b,
                            ArrayRef<OpFoldResult> resultSizes,
                            RankedTensorType resultType, bool grouped) {
  Type elementType = resultType.getElementType();
  if (!grouped)
    return b.empty(resultSizes, elementType);
  return b.filled(resultSizes, b.floatConst(elementType, 0.0));
}

struct ExpertOpLowering : OpConversionPattern<ExpertOp> {
  ExpertOpLowering(MLIRContext *ctx, int64_t tileRows)
      : OpConversionPattern(ctx), tileRows(tileRows) {}

  LogicalResult
  matchAndRewrite(ExpertOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto resultType = cast<RankedTensorType>(op.getResult().getType());
    if (resultType.isDynamicDim(resultType.getRank() - 1))
      return op.emitOpError("cannot be lowered: the expert output feature "
                            "size must be static, got ")
             << resultType;

    if (tileRows > 0 && op.getExpertRowsType().isDynamicDim(0))
      return lowerTiled(op, adaptor, rewriter);

    LoweringBuilder b(op.getLoc(), rewriter);
    Value inputs = adaptor.getInputs();
    bool grouped = op.isGrouped();
    int64_t numExperts = grouped ? op.getOffsets().getType().getDimSize(0) - 1
                                 : resultType.getDimSize(0);
    SmallVector<OpFoldResult> resultSizes;
    for (unsigned dim = 0; dim + 1 < resultType.getRank(); ++dim)
      resultSizes.push_back(b.size(inputs, dim));
    resultSizes.push_back(b.getIndexAttr(resultType.getShape().back()));
    Value init = initialOutputs(b, resultSizes, resultType, grouped);
    GroupBounds bounds;
    if (grouped)
      bounds = b.groupBounds(adaptor.getOffsets(), b.sizeValue(inputs, 0));

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
      auto [start, count] = lb.groupRows(bounds, expert);
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
    Value yielded = moe::detail::cloneExpertBody(
        rewriter, op, rows, expert, adaptor.getWeights(), adaptor.getScales());

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

  /// scf.forall (e, t) in (E, ceil(R / tileRows)): tile t of expert e reads
  /// rows r0 = t * tileRows .. r0 + tileRows (zero rows past the expert's
  /// count), runs the body on them when any is valid, and writes back only
  /// the valid rows.
  LogicalResult lowerTiled(ExpertOp op, OpAdaptor adaptor,
                           ConversionPatternRewriter &rewriter) const {
    auto resultType = cast<RankedTensorType>(op.getResult().getType());
    LoweringBuilder b(op.getLoc(), rewriter);
    Value inputs = adaptor.getInputs();
    bool grouped = op.isGrouped();
    int64_t numExperts = grouped ? op.getOffsets().getType().getDimSize(0) - 1
                                 : resultType.getDimSize(0);
    int64_t outDim = resultType.getShape().back();
    SmallVector<OpFoldResult> resultSizes;
    for (unsigned dim = 0; dim + 1 < resultType.getRank(); ++dim)
      resultSizes.push_back(b.size(inputs, dim));
    resultSizes.push_back(b.getIndexAttr(outDim));
    Value init = initialOutputs(b, resultSizes, resultType, grouped);

    // An expert has at most all N rows of the grouped layout, or C slots.
    Value maxRows = b.sizeValue(inputs, grouped ? 0 : 1);
    Value tile = b.indexConst(tileRows);
    Value numTiles = arith::CeilDivUIOp::create(b, maxRows, tile);
    GroupBounds bounds;
    if (grouped)
      bounds = b.groupBounds(adaptor.getOffsets(), maxRows);
    auto forall = scf::ForallOp::create(
        b, ArrayRef<OpFoldResult>{b.getIndexAttr(numExperts), numTiles},
        ValueRange{init}, std::nullopt);
    Value expert = forall.getInductionVars()[0];
    Value shared = forall.getRegionIterArgs()[0];
    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPoint(forall.getTerminator());
    LoweringBuilder lb(op.getLoc(), rewriter);

    Value start = lb.indexConst(0), count = maxRows;
    if (grouped) {
      std::tie(start, count) = lb.groupRows(bounds, expert);
    }
    Value r0 = arith::MulIOp::create(lb, forall.getInductionVars()[1], tile);
    // valid = clamp(count - r0, 0, tileRows), computed without underflow.
    Value left =
        arith::SubIOp::create(lb, arith::MaxUIOp::create(lb, count, r0), r0);
    Value valid = arith::MinUIOp::create(lb, left, tile);

    // Tiles past the expert's rows skip the gather and the body.
    auto tileOutType =
        RankedTensorType::get({tileRows, outDim}, resultType.getElementType());
    Value any = arith::CmpIOp::create(lb, arith::CmpIPredicate::ne, valid,
                                      lb.indexConst(0));
    auto ifOp = scf::IfOp::create(lb, tileOutType, any, /*withElse=*/true);
    rewriter.setInsertionPointToStart(ifOp.thenBlock());
    Value bodyRows;
    {
      LoweringBuilder lb(op.getLoc(), rewriter);
      // The tile's rows, zero past `valid`.
      auto inType = cast<RankedTensorType>(inputs.getType());
      Type inElement = inType.getElementType();
      OpFoldResult inDim = lb.size(inputs, inType.getRank() - 1);
      Value rowsInit = lb.empty({lb.getIndexAttr(tileRows), inDim}, inElement);
      Value rows = lb.generic(
          {}, {}, rowsInit, {{0, 1}}, 2, {},
          [&](OpBuilder &gb, Location loc, ValueRange) {
            LoweringBuilder gl(loc, gb);
            Value i = linalg::IndexOp::create(gl, 0);
            Value d = linalg::IndexOp::create(gl, 1);
            Value inside =
                arith::CmpIOp::create(gl, arith::CmpIPredicate::ult, i, valid);
            // Padding rows read the last row of the input (there is one
            // whenever the forall runs) and select zero.
            Value row = arith::AddIOp::create(gl, r0, i);
            if (grouped)
              row = arith::AddIOp::create(gl, start, row);
            row = arith::MinUIOp::create(
                gl, row,
                arith::SubIOp::create(gl, grouped ? maxRows : count,
                                      gl.indexConst(1)));
            Value at =
                grouped
                    ? tensor::ExtractOp::create(gl, inputs, ValueRange{row, d})
                          .getResult()
                    : tensor::ExtractOp::create(gl, inputs,
                                                ValueRange{expert, row, d})
                          .getResult();
            Value zero = gl.floatConst(inElement, 0.0);
            linalg::YieldOp::create(
                gl, arith::SelectOp::create(gl, inside, at, zero).getResult());
          })[0];
      bodyRows = tensor::CastOp::create(lb, op.getExpertRowsType(), rows);
    }
    rewriter.setInsertionPointAfter(bodyRows.getDefiningOp());
    Value yielded =
        moe::detail::cloneExpertBody(rewriter, op, bodyRows, expert,
                                     adaptor.getWeights(), adaptor.getScales());
    scf::YieldOp::create(
        rewriter, op.getLoc(),
        tensor::CastOp::create(rewriter, op.getLoc(), tileOutType, yielded)
            .getResult());
    rewriter.setInsertionPointToStart(ifOp.elseBlock());
    scf::YieldOp::create(rewriter, op.getLoc(),
                         tensor::EmptyOp::create(rewriter, op.getLoc(),
                                                 tileOutType.getShape(),
                                                 tileOutType.getElementType())
                             .getResult());
    rewriter.setInsertionPointAfter(ifOp);

    // Only the valid rows go back.
    OpFoldResult zero = lb.getIndexAttr(0), one = lb.getIndexAttr(1);
    OpFoldResult outSize = lb.getIndexAttr(outDim);
    auto validType = RankedTensorType::get({ShapedType::kDynamic, outDim},
                                           resultType.getElementType());
    Value validRows = tensor::ExtractSliceOp::create(
        lb, validType, ifOp.getResult(0), ArrayRef<OpFoldResult>{zero, zero},
        ArrayRef<OpFoldResult>{valid, outSize},
        ArrayRef<OpFoldResult>{one, one});
    SmallVector<OpFoldResult> offsets, sizes, strides;
    if (grouped) {
      offsets = {arith::AddIOp::create(lb, start, r0).getResult(), zero};
      sizes = {valid, outSize};
      strides = {one, one};
    } else {
      offsets = {expert, r0, zero};
      sizes = {one, valid, outSize};
      strides = {one, one, one};
    }
    rewriter.setInsertionPointToStart(forall.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(rewriter, op.getLoc(), validRows,
                                          shared, offsets, sizes, strides);
    rewriter.replaceOp(op, forall.getResults());
    return success();
  }

  int64_t tileRows;
};

} // namespace

void mlir::moe::detail::populateExpertToLinalgPatterns(
    RewritePatternSet &patterns, int64_t tileRows) {
  patterns.add<ExpertOpLowering>(patterns.getContext(), tileRows);
}
