//===- RouteOp.cpp - moe.route ----------------------------------*- C++ -*-===//
//
// This file implements the builders, accessors and verifier of moe.route:
// the result types each routing policy implies (capacity, grouped, soft
// layouts) and the check of the declared ones against them.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/TypeUtilities.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/CheckedArithmetic.h"
#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace mlir::moe;

//===----------------------------------------------------------------------===//
// RouteOp
//===----------------------------------------------------------------------===//

static ArrayRef<StringRef> getResultNames(RoutingLayout layout) {
  static const StringRef capacity[] = {"token ids", "gates"};
  static const StringRef grouped[] = {"token ids", "gates", "offsets"};
  static const StringRef soft[] = {"dispatch weights", "combine weights"};
  switch (layout) {
  case RoutingLayout::Capacity:
    return capacity;
  case RoutingLayout::Grouped:
    return grouped;
  case RoutingLayout::Soft:
    return soft;
  }
  llvm_unreachable("unknown routing layout");
}

/// The result types of a route for `routed` rows or slots (dynamic or not).
static SmallVector<Type> buildResultTypes(RoutingPolicyAttrInterface policy,
                                          RankedTensorType scoresType,
                                          Type idType, int64_t routed) {
  Type floatType = scoresType.getElementType();
  int64_t numExperts = policy.getNumExperts(scoresType.getDimSize(1));
  switch (policy.getLayout()) {
  case RoutingLayout::Capacity:
    return {RankedTensorType::get({numExperts, routed}, idType),
            RankedTensorType::get({numExperts, routed}, floatType)};
  case RoutingLayout::Grouped: {
    std::optional<int64_t> numOffsets =
        llvm::checkedAdd(numExperts, int64_t{1});
    return {RankedTensorType::get({routed}, idType),
            RankedTensorType::get({routed}, floatType),
            RankedTensorType::get({numOffsets.value_or(ShapedType::kDynamic)},
                                  idType)};
  }
  case RoutingLayout::Soft:
    return {scoresType, scoresType};
  }
  llvm_unreachable("unknown routing layout");
}

FailureOr<SmallVector<Type>>
RouteOp::inferResultTypes(RoutingPolicyAttrInterface policy,
                          RankedTensorType scoresType, Type idType,
                          function_ref<InFlightDiagnostic()> emitError) {
  if (!idType)
    idType = IntegerType::get(scoresType.getContext(), 32);
  int64_t numTokens = scoresType.getDimSize(0);
  int64_t numExperts = policy.getNumExperts(scoresType.getDimSize(1));
  FailureOr<int64_t> routed =
      policy.getRoutedSize(numTokens, numExperts, emitError);
  if (failed(routed))
    return failure();
  if (policy.getLayout() == RoutingLayout::Grouped &&
      !llvm::checkedAdd(numExperts, int64_t{1})) {
    if (emitError)
      emitError() << "the offsets of E = " << numExperts
                  << " experts would have E + 1 entries, which overflows "
                     "int64; use fewer experts";
    return failure();
  }
  return buildResultTypes(policy, scoresType, idType, *routed);
}

void RouteOp::build(OpBuilder &builder, OperationState &state,
                    RoutingPolicyAttrInterface policy, Value scores, Value bias,
                    Type idType) {
  auto scoresType = cast<RankedTensorType>(scores.getType());
  if (!idType)
    idType = builder.getI32Type();
  // Sizes that do not fit become dynamic here; the verifier says why.
  FailureOr<SmallVector<Type>> types =
      inferResultTypes(policy, scoresType, idType);
  build(builder, state,
        succeeded(types) ? *types
                         : buildResultTypes(policy, scoresType, idType,
                                            ShapedType::kDynamic),
        scores, bias, policy);
}

void RouteOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  static const char *sparse[] = {"ids", "gates", "offsets"};
  static const char *soft[] = {"dispatch", "combine"};
  bool isSoft = getLayout() == RoutingLayout::Soft;
  for (auto [index, result] : llvm::enumerate(getResults())) {
    if (index < (isSoft ? 2u : 3u))
      setNameFn(result, isSoft ? soft[index] : sparse[index]);
  }
}

int64_t RouteOp::getNumExperts() {
  return getPolicy().getNumExperts(getScores().getType().getDimSize(1));
}

static TypedValue<RankedTensorType> getResultIf(RouteOp op, bool present,
                                                unsigned index) {
  if (!present || index >= op.getNumResults())
    return {};
  return cast<TypedValue<RankedTensorType>>(op.getResult(index));
}

TypedValue<RankedTensorType> RouteOp::getTokenIds() {
  return getResultIf(*this, getLayout() != RoutingLayout::Soft, 0);
}
TypedValue<RankedTensorType> RouteOp::getGates() {
  return getResultIf(*this, getLayout() != RoutingLayout::Soft, 1);
}
TypedValue<RankedTensorType> RouteOp::getOffsets() {
  return getResultIf(*this, getLayout() == RoutingLayout::Grouped, 2);
}
TypedValue<RankedTensorType> RouteOp::getDispatchWeights() {
  return getResultIf(*this, getLayout() == RoutingLayout::Soft, 0);
}
TypedValue<RankedTensorType> RouteOp::getCombineWeights() {
  return getResultIf(*this, getLayout() == RoutingLayout::Soft, 1);
}

LogicalResult RouteOp::verify() {
  RankedTensorType scoresType = getScores().getType();
  RoutingPolicyAttrInterface policy = getPolicy();
  int64_t numColumns = scoresType.getDimSize(1);
  if (ShapedType::isDynamic(numColumns))
    return emitOpError("needs a static number of score columns (experts), "
                       "got scores ")
           << scoresType;
  if (numColumns < 1)
    return emitOpError("needs at least one expert, got scores ") << scoresType;
  auto emitError = [&] { return emitOpError(); };
  if (failed(policy.verifyScoreColumns(emitError, numColumns)))
    return failure();
  int64_t numExperts = policy.getNumExperts(numColumns);
  // The routed size first, so that an overflow names its product (T * k or
  // the capacity); T = 0 is reported as such below.
  int64_t numTokens = scoresType.getDimSize(0);
  if (numTokens != 0 &&
      failed(policy.getRoutedSize(numTokens, numExperts, emitError)))
    return failure();
  bool soft = policy.getLayout() == RoutingLayout::Soft;
  if (failed(verifyValueSizes(*this, "the scores", getScores(),
                              {"T", soft ? "E*S" : "E"})))
    return failure();

  if (Value bias = getBias()) {
    auto biasType = cast<RankedTensorType>(bias.getType());
    if (!isa<TokenChoiceAttr>(policy))
      return emitOpError("takes a score bias only with #moe.token_choice "
                         "routing, got policy ")
             << policy;
    if (biasType.getDimSize(0) != numExperts)
      return emitOpError("bias must hold one value per expert (E = ")
             << numExperts << "), got " << biasType;
    if (biasType.getElementType() != scoresType.getElementType())
      return emitOpError("bias element type ")
             << biasType.getElementType()
             << " must match the scores' element type "
             << scoresType.getElementType();
  }

  RoutingLayout layout = policy.getLayout();
  ArrayRef<StringRef> names = getResultNames(layout);
  if (getNumResults() != names.size()) {
    InFlightDiagnostic diag = emitOpError("with ")
                              << stringifyRoutingLayout(layout)
                              << "-layout policy " << policy << " has "
                              << names.size() << " results (";
    llvm::interleaveComma(names, diag);
    return diag << "), got " << getNumResults();
  }

  // Token ids fix the integer type; everything else follows from the policy.
  Type idType;
  if (layout != RoutingLayout::Soft) {
    auto idsType = dyn_cast<RankedTensorType>(getResult(0).getType());
    idType = idsType ? idsType.getElementType() : Type();
    if (!idType || !idType.isSignlessInteger() ||
        (idType.getIntOrFloatBitWidth() != 32 &&
         idType.getIntOrFloatBitWidth() != 64))
      return emitOpError("token ids must be a tensor of i32 or i64, got ")
             << getResult(0).getType();
  }
  FailureOr<SmallVector<Type>> expected =
      inferResultTypes(policy, scoresType, idType, emitError);
  if (failed(expected))
    return failure();
  for (auto [index, pair] :
       llvm::enumerate(llvm::zip(getResultTypes(), *expected))) {
    auto [actual, want] = pair;
    if (actual == want)
      continue;
    InFlightDiagnostic diag = emitOpError("result #")
                              << index << " (" << names[index] << ") must be "
                              << want << ", got " << actual;
    auto capacity = dyn_cast<TokenChoiceAttr>(policy);
    double factor = 0.0;
    int64_t topK = 1;
    if (capacity && !capacity.isDropless()) {
      factor = *capacity.getCapacityFactorValue();
      topK = capacity.getTopK();
    } else if (auto expertChoice = dyn_cast<ExpertChoiceAttr>(policy)) {
      factor = expertChoice.getCapacityFactorValue();
    }
    if (layout == RoutingLayout::Capacity) {
      if (ShapedType::isDynamic(numTokens))
        diag.attachNote() << "the capacity C depends on the token count T, so "
                             "it is '?' when T is";
      else
        diag.attachNote() << "C = ceil(capacity_factor * k * T / E) = ceil("
                          << detail::formatF64(factor) << " * " << topK << " * "
                          << numTokens << " / " << numExperts << ") = "
                          << *computeCapacity(factor, topK, numTokens,
                                              numExperts);
    }
    return diag;
  }
  // The results are as inferred; their element counts and bytes must fit.
  SmallVector<StringRef> capacityDims = {"E", "C"}, softDims = {"T", "E*S"};
  SmallVector<StringRef> rowDims = {"T*k"}, offsetDims = {"E+1"};
  for (auto [index, result] : llvm::enumerate(getResults())) {
    ArrayRef<StringRef> dims = layout == RoutingLayout::Capacity ? capacityDims
                               : layout == RoutingLayout::Soft   ? softDims
                               : index == 2                      ? offsetDims
                                                                 : rowDims;
    std::string what =
        ("result #" + Twine(index) + " (" + names[index] + ")").str();
    if (failed(verifyValueSizes(*this, what, result, dims)))
      return failure();
  }
  return success();
}
