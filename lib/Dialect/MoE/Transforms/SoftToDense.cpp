//===- SoftToDense.cpp - moe-soft-to-dense ----------------------*- C++ -*-===//
//
// This file rewrites Soft MoE layers (Puigcerver et al., 2023) into dense
// linalg: softmaxes over the one logits tensor, slots = D^T * X and
// Y = init + C * Y~ as linalg.matmul, and the experts as batched ops.
//
//===----------------------------------------------------------------------===//

#include "BatchExperts.h"

#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Dialect/MoE/Transforms/Transforms.h"
#include "moe/Dialect/MoE/Utils/LoweringBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOESOFTTODENSE
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

/// slots[E*S, D] = weights[T, E*S]^T * tokens[T, D] as a linalg.matmul with
/// a transposed first operand, accumulated in f32.
static Value denseDispatch(LoweringBuilder &b, DispatchOp dispatch,
                           Value weights) {
  Value tokens = dispatch.getTokens();
  auto resultType = cast<RankedTensorType>(dispatch.getResult().getType());
  Type f32 = b.getF32Type();
  OpFoldResult modelDim = b.size(tokens, 1);
  Value acc = b.filled({b.size(weights, 1), modelDim}, b.floatConst(f32, 0.0));
  auto matmul = linalg::MatmulOp::create(b, TypeRange{acc.getType()},
                                         ValueRange{weights, tokens}, acc);
  // (m, n, k): weights[k, m] * tokens[k, n].
  matmul.setIndexingMapsAttr(b.getAffineMapArrayAttr(
      {b.dimsMap(3, {2, 0}), b.dimsMap(3, {2, 1}), b.dimsMap(3, {0, 1})}));
  Value slots =
      b.convertElements(matmul.getResult(0), resultType.getElementType());
  return tensor::ExpandShapeOp::create(
      b, resultType, slots, ArrayRef<ReassociationIndices>{{0, 1}, {2}},
      ArrayRef<OpFoldResult>{b.getIndexAttr(resultType.getDimSize(0)),
                             b.getIndexAttr(resultType.getDimSize(1)),
                             modelDim});
}

/// init + weights[T, E*S] * outputs[E*S, D] as a linalg.matmul into an f32
/// accumulator.
static Value denseCombine(LoweringBuilder &b, CombineOp combine, Value weights,
                          Value outputs) {
  Value init = combine.getInit();
  Value acc = b.convertElements(init, b.getF32Type());
  Value slots = tensor::CollapseShapeOp::create(
      b, outputs, ArrayRef<ReassociationIndices>{{0, 1}, {2}});
  auto matmul = linalg::MatmulOp::create(b, TypeRange{acc.getType()},
                                         ValueRange{weights, slots}, acc);
  return b.convertElements(matmul.getResult(0),
                           getElementTypeOrSelf(init.getType()));
}

LogicalResult mlir::moe::convertSoftToDense(RewriterBase &rewriter,
                                            RouteOp route, bool emitRemarks) {
  if (!isa<SoftAttr>(route.getPolicy()))
    return failure();
  Value dispatchWeights = route.getDispatchWeights();
  Value combineWeights = route.getCombineWeights();
  SmallVector<DispatchOp> dispatches;
  SmallVector<CombineOp> combines;
  for (Operation *user : dispatchWeights.getUsers())
    if (auto dispatch = dyn_cast<DispatchOp>(user);
        dispatch && dispatch.getWeights() == dispatchWeights)
      dispatches.push_back(dispatch);
  for (Operation *user : combineWeights.getUsers())
    if (auto combine = dyn_cast<CombineOp>(user);
        combine && !combine.getIndices() &&
        combine.getWeights() == combineWeights)
      combines.push_back(combine);
  SmallVector<ExpertOp> experts;
  for (DispatchOp dispatch : dispatches)
    for (Operation *user : dispatch.getResult().getUsers())
      if (auto expert = dyn_cast<ExpertOp>(user);
          expert && expert.getInputs() == dispatch.getResult()) {
        // Batched ops read every weight as the body does.
        if (llvm::any_of(
                llvm::seq<unsigned>(expert.getWeights().size()),
                [&](unsigned i) { return expert.getWeightLayout(i); })) {
          if (emitRemarks)
            expert.emitRemark("Soft MoE experts stay a moe.expert: their "
                              "weights are packed");
          continue;
        }
        if (Operation *blocker = findUnbatchableOp(expert)) {
          if (emitRemarks)
            expert.emitRemark("Soft MoE experts stay a moe.expert: '")
                << blocker->getName() << "' at " << blocker->getLoc()
                << " cannot be batched over the experts";
          continue;
        }
        experts.push_back(expert);
      }

  // The routing: both softmaxes read the one logits tensor.
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(route);
  LoweringBuilder b(route.getLoc(), rewriter);
  Type scoreType = getElementTypeOrSelf(route.getScores().getType());
  Value logits = b.convertElements(route.getScores(), b.getF32Type());
  Value newDispatchWeights = b.convertElements(b.softmax(logits, 0), scoreType);
  Value newCombineWeights = b.convertElements(b.softmax(logits, 1), scoreType);
  rewriter.replaceOp(route, ValueRange{newDispatchWeights, newCombineWeights});

  for (DispatchOp dispatch : dispatches) {
    rewriter.setInsertionPoint(dispatch);
    LoweringBuilder db(dispatch.getLoc(), rewriter);
    rewriter.replaceOp(dispatch,
                       denseDispatch(db, dispatch, newDispatchWeights));
  }
  for (ExpertOp expert : experts) {
    rewriter.setInsertionPoint(expert);
    rewriter.replaceOp(expert, batchExpert(rewriter, expert));
  }
  for (CombineOp combine : combines) {
    rewriter.setInsertionPoint(combine);
    LoweringBuilder cb(combine.getLoc(), rewriter);
    rewriter.replaceOp(combine, denseCombine(cb, combine, newCombineWeights,
                                             combine.getExpertOutputs()));
  }
  return success();
}

namespace {
struct SoftToDensePattern : OpRewritePattern<RouteOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(RouteOp route,
                                PatternRewriter &rewriter) const override {
    return convertSoftToDense(rewriter, route, /*emitRemarks=*/false);
  }
};

struct MoESoftToDensePass : moe::impl::MoESoftToDenseBase<MoESoftToDensePass> {
  void runOnOperation() override {
    SmallVector<RouteOp> routes;
    getOperation()->walk([&](RouteOp route) { routes.push_back(route); });
    IRRewriter rewriter(&getContext());
    for (RouteOp route : routes)
      (void)convertSoftToDense(rewriter, route);
  }
};
} // namespace

void mlir::moe::populateSoftToDensePatterns(RewritePatternSet &patterns) {
  patterns.add<SoftToDensePattern>(patterns.getContext());
}
