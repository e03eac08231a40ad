//===- TokenToExpertChoice.cpp - moe-token-to-expert-choice -----*- C++ -*-===//
//
// This file rewrites token-choice layers into expert-choice layers (Zhou et
// al., 2022): the route gets an #moe.expert_choice policy and its dispatch,
// expert and combine consumers are rebuilt for the new capacity and layout.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Dialect/MoE/Transforms/Transforms.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/TypeUtilities.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

namespace mlir::moe {
#define GEN_PASS_DEF_MOETOKENTOEXPERTCHOICE
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// The ops of one layer that read the routing of a route.
struct LayerOps {
  SmallVector<DispatchOp> dispatches;
  llvm::SetVector<ExpertOp> experts;
  SmallVector<CombineOp> combines;
};

/// Describes `op` for a remark: its name and location.
std::string describe(Operation *op) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "'" << op->getName() << "' at " << op->getLoc();
  return text;
}

/// Collects the dispatch, expert and combine ops fed by `route`, or says in
/// `why` which use the rewrite cannot follow.
FailureOr<LayerOps> collectLayer(RouteOp route, std::string &why) {
  LayerOps layer;
  Value ids = route.getTokenIds(), gates = route.getGates();
  Value offsets = route.getOffsets();
  for (Operation *user : ids.getUsers()) {
    if (auto dispatch = dyn_cast<DispatchOp>(user);
        dispatch && dispatch.getIndices() == ids) {
      layer.dispatches.push_back(dispatch);
    } else if (auto combine = dyn_cast<CombineOp>(user);
               combine && combine.getIndices() == ids &&
               combine.getWeights() == gates) {
      layer.combines.push_back(combine);
    } else {
      why = "its token ids are used by " + describe(user);
      return failure();
    }
  }
  for (Operation *user : gates.getUsers()) {
    auto combine = dyn_cast<CombineOp>(user);
    if (!combine || combine.getIndices() != ids) {
      why = "its gates are used by " + describe(user);
      return failure();
    }
  }
  if (offsets) {
    for (Operation *user : offsets.getUsers()) {
      auto expert = dyn_cast<ExpertOp>(user);
      if (!expert || expert.getOffsets() != offsets) {
        why = "its offsets are used by " + describe(user);
        return failure();
      }
    }
  }
  for (DispatchOp dispatch : layer.dispatches) {
    for (Operation *user : dispatch.getResult().getUsers()) {
      auto expert = dyn_cast<ExpertOp>(user);
      if (!expert || expert.getInputs() != dispatch.getResult() ||
          expert.getOffsets() != offsets) {
        why = "its dispatched tokens are used by " + describe(user);
        return failure();
      }
      layer.experts.insert(expert);
    }
  }
  for (ExpertOp expert : layer.experts) {
    for (Operation *user : expert.getResult().getUsers()) {
      auto combine = dyn_cast<CombineOp>(user);
      if (!combine || combine.getExpertOutputs() != expert.getResult() ||
          combine.getIndices() != ids) {
        why = "its expert outputs are used by " + describe(user);
        return failure();
      }
    }
  }
  if (offsets && !offsets.use_empty() &&
      llvm::any_of(offsets.getUsers(), [&](Operation *user) {
        return !layer.experts.contains(cast<ExpertOp>(user));
      })) {
    why = "an expert reads its offsets but not its dispatched tokens";
    return failure();
  }
  return layer;
}

/// Lists what expert choice cannot express of `policy`.
SmallVector<std::string> droppedFeatures(TokenChoiceAttr policy,
                                         bool keepNormalize) {
  SmallVector<std::string> dropped;
  if (policy.getScore() == ScoreFunction::Sigmoid)
    dropped.push_back("sigmoid scores (expert choice uses softmax)");
  if (policy.getNormalize() && !keepNormalize)
    dropped.push_back("normalize = true (pass keep-normalize=true to keep "
                      "it as per-token normalization)");
  if (policy.getNGroup() > 1)
    dropped.push_back(
        "grouped routing (n_group = " + std::to_string(policy.getNGroup()) +
        ", topk_group = " + std::to_string(policy.getEffectiveTopkGroup()) +
        ")");
  if (policy.getRoutedScalingFactorValue() != 1.0)
    dropped.push_back(
        "routed_scaling_factor = " +
        moe::detail::formatF64(policy.getRoutedScalingFactorValue()));
  if (policy.getOrder() == CapacityOrder::Priority)
    dropped.push_back("order = priority (experts pick tokens)");
  return dropped;
}

/// Remarks on `route` what expert choice could not keep of `policy`.
void remarkDropped(RouteOp route, TokenChoiceAttr policy,
                   const TokenToExpertChoiceOptions &options) {
  SmallVector<std::string> dropped =
      droppedFeatures(policy, options.keepNormalize);
  if (!options.emitRemarks || dropped.empty())
    return;
  InFlightDiagnostic remark = route.emitRemark(
      "converted to expert choice; dropped what it cannot express: ");
  llvm::interleaveComma(dropped, remark);
}

/// Returns the capacity factor the rewrite gives `policy`'s layer.
double expertChoiceFactor(TokenChoiceAttr policy,
                          const TokenToExpertChoiceOptions &options) {
  return options.capacityFactor.value_or(
      policy.getTopK() * policy.getCapacityFactorValue().value_or(1.0));
}

} // namespace

LogicalResult mlir::moe::verifyTokenToExpertChoiceSizes(
    RouteOp route, const TokenToExpertChoiceOptions &options,
    function_ref<InFlightDiagnostic()> emitError) {
  auto policy = dyn_cast<TokenChoiceAttr>(route.getPolicy());
  if (!policy)
    return success();
  auto error = [&]() -> InFlightDiagnostic {
    return emitError() << "moe-token-to-expert-choice: ";
  };
  double factor = expertChoiceFactor(policy, options);
  if (!std::isfinite(factor) || factor <= 0.0) {
    if (!emitError)
      return failure();
    if (options.capacityFactor)
      return error() << "capacity-factor must be a finite positive number, "
                        "got "
                     << moe::detail::formatF64(factor);
    return error() << "the expert-choice capacity factor top_k * "
                      "capacity_factor = "
                   << policy.getTopK() << " * "
                   << moe::detail::formatF64(
                          policy.getCapacityFactorValue().value_or(1.0))
                   << " overflows f64; pass capacity-factor=";
  }
  auto newPolicy =
      ExpertChoiceAttr::get(route.getContext(), factor,
                            options.keepNormalize && policy.getNormalize());
  RankedTensorType scoresType = route.getScores().getType();
  Type idType = getElementTypeOrSelf(route.getTokenIds().getType());
  // The capacity: static when T is, fitting int64 and at least 1.
  FailureOr<SmallVector<Type>> newTypes = RouteOp::inferResultTypes(
      newPolicy, scoresType, idType,
      emitError ? function_ref<InFlightDiagnostic()>([&] {
        return error() << "with capacity_factor = "
                       << moe::detail::formatF64(factor) << ", ";
      })
                : function_ref<InFlightDiagnostic()>());
  if (failed(newTypes))
    return failure();
  auto idsType = cast<RankedTensorType>((*newTypes)[0]);
  int64_t capacity = idsType.getDimSize(1);
  if (ShapedType::isDynamic(capacity) != scoresType.isDynamicDim(0)) {
    if (emitError)
      error() << "the capacity of " << idsType
              << " must be static exactly when T is";
    return failure();
  }
  // Every tensor the rewrite builds: the routing, and the dispatched rows
  // and expert outputs [E, C, D] of the layer.
  auto fits = [&](StringRef what, RankedTensorType type) {
    return verifyTensorSizes(
        emitError ? function_ref<InFlightDiagnostic()>([&] { return error(); })
                  : function_ref<InFlightDiagnostic()>(),
        what, type, {"E", "C", "D"});
  };
  if (failed(fits("the expert-choice token ids", idsType)))
    return failure();
  auto rowsOf = [&](Value value) {
    auto type = cast<RankedTensorType>(value.getType());
    return RankedTensorType::get(
        {idsType.getDimSize(0), capacity, type.getShape().back()},
        type.getElementType());
  };
  for (Operation *user : route.getTokenIds().getUsers()) {
    auto dispatch = dyn_cast<DispatchOp>(user);
    if (!dispatch)
      continue;
    if (failed(fits("the dispatched tokens", rowsOf(dispatch.getResult()))))
      return failure();
    for (Operation *dispatchUser : dispatch.getResult().getUsers())
      if (auto expert = dyn_cast<ExpertOp>(dispatchUser))
        if (failed(fits("the expert outputs", rowsOf(expert.getResult()))))
          return failure();
  }
  return success();
}

FailureOr<RouteOp> mlir::moe::convertTokenToExpertChoice(
    RewriterBase &rewriter, RouteOp route,
    const TokenToExpertChoiceOptions &options) {
  auto policy = dyn_cast<TokenChoiceAttr>(route.getPolicy());
  if (!policy)
    return failure();
  auto fail = [&](const Twine &why) -> FailureOr<RouteOp> {
    if (options.emitRemarks)
      route.emitRemark("not converted to expert choice: ") << why;
    return failure();
  };

  // Sizes that do not fit leave the IR untouched; the pass reports them.
  if (failed(verifyTokenToExpertChoiceSizes(route, options, /*emitError=*/{})))
    return fail("the expert-choice sizes do not fit int64 (run "
                "moe-token-to-expert-choice for the details)");
  double factor = expertChoiceFactor(policy, options);
  MLIRContext *ctx = rewriter.getContext();
  auto newPolicy = ExpertChoiceAttr::get(
      ctx, factor, options.keepNormalize && policy.getNormalize());
  RankedTensorType scoresType = route.getScores().getType();
  Type idType = getElementTypeOrSelf(route.getTokenIds().getType());
  SmallVector<Type> newTypes =
      *RouteOp::inferResultTypes(newPolicy, scoresType, idType);
  auto idsType = cast<RankedTensorType>(newTypes[0]);

  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(route);
  // Same result types (the default capacity of a capacity layer): only the
  // route changes, whoever reads its results.
  if (TypeRange(newTypes) == route.getResultTypes()) {
    auto newRoute = RouteOp::create(
        rewriter, route.getLoc(), newTypes, route.getScores(),
        /*bias=*/Value(), cast<RoutingPolicyAttrInterface>(newPolicy));
    rewriter.replaceOp(route, newRoute.getResults());
    remarkDropped(newRoute, policy, options);
    return newRoute;
  }

  std::string why;
  FailureOr<LayerOps> layer = collectLayer(route, why);
  if (failed(layer))
    return fail(why);

  // The expert bodies keep their code: the new rows must cast to the old.
  int64_t capacity = idsType.getDimSize(1);
  for (ExpertOp expert : layer->experts) {
    RankedTensorType oldRows = expert.getExpertRowsType();
    auto newRows = RankedTensorType::get({capacity, oldRows.getDimSize(1)},
                                         oldRows.getElementType());
    if (!tensor::CastOp::areCastCompatible(newRows, oldRows))
      return fail(
          "the expert body at " + llvm::formatv("{0}", expert.getLoc()).str() +
          " is written for rows '" + llvm::formatv("{0}", oldRows).str() +
          "' and expert choice gives it '" +
          llvm::formatv("{0}", newRows).str() + "'" +
          "; write the body for a dynamic row count");
  }

  auto newRoute = RouteOp::create(rewriter, route.getLoc(), newTypes,
                                  route.getScores(), /*bias=*/Value(),
                                  cast<RoutingPolicyAttrInterface>(newPolicy));
  Value ids = newRoute.getTokenIds(), gates = newRoute.getGates();

  IRMapping rebuilt;
  for (DispatchOp dispatch : layer->dispatches) {
    rewriter.setInsertionPoint(dispatch);
    auto tokensType = dispatch.getTokens().getType();
    auto type = RankedTensorType::get(
        {idsType.getDimSize(0), capacity, tokensType.getDimSize(1)},
        tokensType.getElementType());
    auto newDispatch = DispatchOp::create(rewriter, dispatch.getLoc(), type,
                                          dispatch.getTokens(), ids, Value());
    rebuilt.map(dispatch.getResult(), newDispatch.getResult());
  }
  for (ExpertOp expert : layer->experts) {
    rewriter.setInsertionPoint(expert);
    auto oldResult = cast<RankedTensorType>(expert.getResult().getType());
    Value inputs = rebuilt.lookup(expert.getInputs());
    auto inputsType = cast<RankedTensorType>(inputs.getType());
    auto resultType = RankedTensorType::get(
        {inputsType.getDimSize(0), capacity, oldResult.getShape().back()},
        oldResult.getElementType());
    auto newExpert =
        ExpertOp::create(rewriter, expert.getLoc(), resultType, inputs,
                         /*offsets=*/Value(), expert.getWeights(),
                         expert.getScales(), expert.getWeightLayoutsAttr());
    Block &oldBody = expert.getBody().front();
    SmallVector<Type> argTypes = {RankedTensorType::get(
        inputsType.getShape().drop_front(), inputsType.getElementType())};
    SmallVector<Location> argLocs;
    for (BlockArgument arg : oldBody.getArguments()) {
      argLocs.push_back(arg.getLoc());
      if (arg.getArgNumber() > 0)
        argTypes.push_back(arg.getType());
    }
    Block *body =
        rewriter.createBlock(&newExpert.getBody(), {}, argTypes, argLocs);
    IRMapping mapping;
    Value rows = body->getArgument(0);
    if (rows.getType() != oldBody.getArgument(0).getType())
      rows = tensor::CastOp::create(rewriter, expert.getLoc(),
                                    oldBody.getArgument(0).getType(), rows);
    mapping.map(oldBody.getArgument(0), rows);
    for (unsigned i = 1; i < oldBody.getNumArguments(); ++i)
      mapping.map(oldBody.getArgument(i), body->getArgument(i));
    for (Operation &op : oldBody.without_terminator())
      rewriter.clone(op, mapping);
    Value yielded = mapping.lookup(expert.getYieldedValue());
    auto yieldType = RankedTensorType::get(
        {capacity, oldResult.getShape().back()}, oldResult.getElementType());
    if (yielded.getType() != yieldType)
      yielded =
          tensor::CastOp::create(rewriter, expert.getLoc(), yieldType, yielded);
    YieldOp::create(rewriter, expert.getLoc(), yielded);
    rebuilt.map(expert.getResult(), newExpert.getResult());
  }
  for (CombineOp combine : layer->combines) {
    rewriter.setInsertionPoint(combine);
    Value outputs = rebuilt.lookupOrDefault(combine.getExpertOutputs());
    auto newCombine = CombineOp::create(rewriter, combine.getLoc(),
                                        combine.getResult().getType(), outputs,
                                        ids, gates, combine.getInit());
    rewriter.replaceOp(combine, newCombine.getResult());
  }
  for (ExpertOp expert : layer->experts)
    rewriter.eraseOp(expert);
  for (DispatchOp dispatch : layer->dispatches)
    rewriter.eraseOp(dispatch);
  rewriter.eraseOp(route);

  remarkDropped(newRoute, policy, options);
  return newRoute;
}

namespace {
struct TokenToExpertChoicePattern : OpRewritePattern<RouteOp> {
  TokenToExpertChoicePattern(MLIRContext *ctx,
                             TokenToExpertChoiceOptions options)
      : OpRewritePattern(ctx), options(options) {}

  LogicalResult matchAndRewrite(RouteOp route,
                                PatternRewriter &rewriter) const override {
    return convertTokenToExpertChoice(rewriter, route, options);
  }

  TokenToExpertChoiceOptions options;
};

struct MoETokenToExpertChoicePass
    : moe::impl::MoETokenToExpertChoiceBase<MoETokenToExpertChoicePass> {
  using Base::Base;

  void runOnOperation() override {
    if (capacityFactor < 0.0 || !std::isfinite(capacityFactor)) {
      getOperation()->emitError("moe-token-to-expert-choice: capacity-factor "
                                "must be a finite positive number (or 0 for "
                                "the default), got ")
          << moe::detail::formatF64(capacityFactor);
      return signalPassFailure();
    }
    TokenToExpertChoiceOptions options;
    if (capacityFactor > 0.0)
      options.capacityFactor = capacityFactor;
    options.keepNormalize = keepNormalize;
    // A walk, not the greedy driver, so that each route is tried (and
    // remarked on) exactly once.
    SmallVector<RouteOp> routes;
    getOperation()->walk([&](RouteOp route) { routes.push_back(route); });
    // A capacity that does not fit is an error, not a layer left as it is:
    // the pass must not produce (or leave) what the pipelines cannot compile
    // only because of the option.
    bool fits = true;
    for (RouteOp route : routes)
      fits &= succeeded(verifyTokenToExpertChoiceSizes(
          route, options, [&] { return route.emitError(); }));
    if (!fits)
      return signalPassFailure();
    IRRewriter rewriter(&getContext());
    for (RouteOp route : routes)
      (void)convertTokenToExpertChoice(rewriter, route, options);
  }
};
} // namespace

void mlir::moe::populateTokenToExpertChoicePatterns(
    RewritePatternSet &patterns, const TokenToExpertChoiceOptions &options) {
  TokenToExpertChoiceOptions quiet = options;
  // Patterns may be retried; remarks would repeat.
  quiet.emitRemarks = false;
  patterns.add<TokenToExpertChoicePattern>(patterns.getContext(), quiet);
}
