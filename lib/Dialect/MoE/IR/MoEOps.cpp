//===- MoEOps.cpp - MoE dialect ops -----------------------------*- C++ -*-===//
//
// This file implements the builders, accessors and verifiers of the `moe`
// ops. The verifiers check that every consumer of a routing agrees with its
// shapes (E, C, D, slots) and say which sizes disagree.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/TypeUtilities.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace mlir::moe;

#define GET_OP_CLASSES
#include "moe/Dialect/MoE/IR/MoEOps.cpp.inc"

/// Prints a shape as `[8, 4, ?]` for diagnostics.
static std::string shapeText(ArrayRef<int64_t> shape) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "[";
  llvm::interleaveComma(shape, os, [&](int64_t dim) {
    if (ShapedType::isDynamic(dim))
      os << "?";
    else
      os << dim;
  });
  os << "]";
  return text;
}

/// Returns whether two shapes agree where both are static.
static bool compatible(ArrayRef<int64_t> lhs, ArrayRef<int64_t> rhs) {
  return succeeded(verifyCompatibleShape(lhs, rhs));
}

/// Returns whether two sizes agree when both are static.
static bool compatible(int64_t lhs, int64_t rhs) {
  return ShapedType::isDynamic(lhs) || ShapedType::isDynamic(rhs) || lhs == rhs;
}

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

SmallVector<Type> RouteOp::inferResultTypes(RoutingPolicyAttrInterface policy,
                                            RankedTensorType scoresType,
                                            Type idType) {
  MLIRContext *ctx = scoresType.getContext();
  if (!idType)
    idType = IntegerType::get(ctx, 32);
  Type floatType = scoresType.getElementType();
  int64_t numTokens = scoresType.getDimSize(0);
  int64_t numExperts = policy.getNumExperts(scoresType.getDimSize(1));
  int64_t routed = policy.getRoutedSize(numTokens, numExperts);
  switch (policy.getLayout()) {
  case RoutingLayout::Capacity:
    return {RankedTensorType::get({numExperts, routed}, idType),
            RankedTensorType::get({numExperts, routed}, floatType)};
  case RoutingLayout::Grouped:
    return {RankedTensorType::get({routed}, idType),
            RankedTensorType::get({routed}, floatType),
            RankedTensorType::get({numExperts + 1}, idType)};
  case RoutingLayout::Soft:
    return {scoresType, scoresType};
  }
  llvm_unreachable("unknown routing layout");
}

void RouteOp::build(OpBuilder &builder, OperationState &state,
                    RoutingPolicyAttrInterface policy, Value scores, Value bias,
                    Type idType) {
  auto scoresType = cast<RankedTensorType>(scores.getType());
  build(builder, state, inferResultTypes(policy, scoresType, idType), scores,
        bias, policy);
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
  if (failed(
          policy.verifyScoreColumns([&] { return emitOpError(); }, numColumns)))
    return failure();
  int64_t numExperts = policy.getNumExperts(numColumns);

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
  SmallVector<Type> expected = inferResultTypes(policy, scoresType, idType);
  for (auto [index, pair] :
       llvm::enumerate(llvm::zip(getResultTypes(), expected))) {
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
    int64_t numTokens = scoresType.getDimSize(0);
    if (layout == RoutingLayout::Capacity) {
      if (ShapedType::isDynamic(numTokens))
        diag.attachNote() << "the capacity C depends on the token count T, so "
                             "it is '?' when T is";
      else
        diag.attachNote() << "C = ceil(capacity_factor * k * T / E) = ceil("
                          << detail::formatF64(factor) << " * " << topK << " * "
                          << numTokens << " / " << numExperts << ") = "
                          << computeCapacity(factor, topK, numTokens,
                                             numExperts);
    }
    return diag;
  }
  return success();
}

/// Verifies Soft MoE slots `[E, S, D]` (named `slotsName` in messages)
/// against the dispatch or combine weights `[T, E*S]` and the tokens'
/// `[T, D]`.
static LogicalResult verifySoftSlots(Operation *op, RankedTensorType slots,
                                     StringRef slotsName,
                                     RankedTensorType weights,
                                     StringRef weightsName, int64_t numTokens,
                                     int64_t modelDim) {
  if (!compatible(weights.getDimSize(0), numTokens))
    return op->emitOpError("Soft MoE ")
           << weightsName << " weights have " << weights.getDimSize(0)
           << " rows, expected one per token (T = " << numTokens << ")";
  if (slots.getRank() != 3)
    return op->emitOpError("Soft MoE ")
           << slotsName << " must be [E, S, D], got " << slots;
  int64_t numExperts = slots.getDimSize(0);
  int64_t slotsPerExpert = slots.getDimSize(1);
  if (ShapedType::isDynamic(numExperts) ||
      ShapedType::isDynamic(slotsPerExpert))
    return op->emitOpError("Soft MoE slots [E, S] must be static, got ")
           << slots;
  if (!compatible(weights.getDimSize(1), numExperts * slotsPerExpert))
    return op->emitOpError("has E * S = ")
           << numExperts << " * " << slotsPerExpert << " = "
           << numExperts * slotsPerExpert << " slots in the " << slotsName
           << ", but the " << weightsName << " weights have "
           << weights.getDimSize(1) << " columns";
  if (!compatible(slots.getDimSize(2), modelDim))
    return op->emitOpError("feature size ")
           << slots.getDimSize(2) << " of the " << slotsName
           << " must match the tokens' D = " << modelDim;
  return success();
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

LogicalResult DispatchOp::verify() {
  RankedTensorType tokensType = getTokens().getType();
  auto resultType = cast<RankedTensorType>(getResult().getType());
  Value indices = getIndices(), weights = getWeights();
  if (static_cast<bool>(indices) == static_cast<bool>(weights))
    return emitOpError("needs exactly one of 'indices' (sparse routing) or "
                       "'weights' (Soft MoE), got ")
           << (indices ? "both" : "neither");
  if (resultType.getElementType() != tokensType.getElementType())
    return emitOpError("result element type ")
           << resultType.getElementType()
           << " must match the tokens' element type "
           << tokensType.getElementType();
  int64_t numTokens = tokensType.getDimSize(0);
  int64_t modelDim = tokensType.getDimSize(1);

  if (indices) {
    ArrayRef<int64_t> slots =
        cast<RankedTensorType>(indices.getType()).getShape();
    SmallVector<int64_t> want(slots);
    want.push_back(modelDim);
    if (!compatible(resultType.getShape(), want))
      return emitOpError("result must be ")
             << shapeText(want) << " (the indices' " << shapeText(slots)
             << " rows of D = " << modelDim << "), got " << resultType;
    return success();
  }

  return verifySoftSlots(*this, resultType, "result",
                         cast<RankedTensorType>(weights.getType()), "dispatch",
                         numTokens, modelDim);
}

//===----------------------------------------------------------------------===//
// ExpertOp
//===----------------------------------------------------------------------===//

RankedTensorType ExpertOp::getExpertRowsType() {
  RankedTensorType inputs = getInputs().getType();
  if (isGrouped())
    return RankedTensorType::get({ShapedType::kDynamic, inputs.getDimSize(1)},
                                 inputs.getElementType());
  return RankedTensorType::get(inputs.getShape().drop_front(),
                               inputs.getElementType());
}

Value ExpertOp::getYieldedValue() {
  return cast<YieldOp>(getBody().front().getTerminator()).getValue();
}

LogicalResult ExpertOp::verify() {
  RankedTensorType inputsType = getInputs().getType();
  auto resultType = cast<RankedTensorType>(getResult().getType());
  int64_t rank = inputsType.getRank();
  if (rank != 2 && rank != 3)
    return emitOpError("inputs must be [E, R, D] (capacity or soft layout) "
                       "or [N, D] with offsets (grouped layout), got ")
           << inputsType;
  if (rank == 2 && !getOffsets())
    return emitOpError("inputs ")
           << inputsType
           << " use the grouped layout and need 'offsets' ([E+1])";
  if (rank == 3 && getOffsets())
    return emitOpError("'offsets' are only for grouped inputs [N, D], got "
                       "inputs ")
           << inputsType;

  int64_t numExperts = ShapedType::kDynamic;
  if (rank == 3) {
    numExperts = inputsType.getDimSize(0);
  } else {
    int64_t numOffsets = getOffsets().getType().getDimSize(0);
    if (!ShapedType::isDynamic(numOffsets))
      numExperts = numOffsets - 1;
  }
  if (ShapedType::isDynamic(numExperts))
    return emitOpError("needs a static number of experts, got inputs ")
           << inputsType;

  for (auto [index, weight] : llvm::enumerate(getWeights())) {
    auto weightType = cast<RankedTensorType>(weight.getType());
    if (weightType.getRank() < 1)
      return emitOpError("weight #")
             << index << " must have a leading expert dimension, got "
             << weightType;
    if (!compatible(weightType.getDimSize(0), numExperts))
      return emitOpError("weight #")
             << index << " has leading dimension " << weightType.getDimSize(0)
             << ", expected the number of experts E = " << numExperts;
  }

  if (resultType.getRank() != rank ||
      !compatible(resultType.getShape().drop_back(),
                  inputsType.getShape().drop_back()))
    return emitOpError("result must keep the inputs' rows ")
           << shapeText(inputsType.getShape().drop_back()) << ", got "
           << resultType;
  return success();
}

LogicalResult ExpertOp::verifyRegions() {
  Block &body = getBody().front();
  unsigned numArgs = 1 + getWeights().size();
  if (body.getNumArguments() != numArgs)
    return emitOpError("body must take ")
           << numArgs
           << " arguments (the expert's rows and one slice per weight), got "
           << body.getNumArguments();
  RankedTensorType rowsType = getExpertRowsType();
  if (body.getArgument(0).getType() != rowsType)
    return emitOpError("body argument #0 must be the expert's rows ")
           << rowsType << ", got " << body.getArgument(0).getType();
  for (auto [index, weight] : llvm::enumerate(getWeights())) {
    auto weightType = cast<RankedTensorType>(weight.getType());
    auto slice = RankedTensorType::get(weightType.getShape().drop_front(),
                                       weightType.getElementType(),
                                       weightType.getEncoding());
    Type argType = body.getArgument(index + 1).getType();
    if (argType != slice)
      return emitOpError("body argument #")
             << index + 1 << " must be weight #" << index
             << " without its expert dimension, " << slice << ", got "
             << argType;
  }
  auto resultType = cast<RankedTensorType>(getResult().getType());
  auto yielded = RankedTensorType::get(
      {rowsType.getDimSize(0), resultType.getShape().back()},
      resultType.getElementType());
  Type actual = getYieldedValue().getType();
  if (actual != yielded)
    return emitOpError("body must yield the expert's output rows ")
           << yielded << " (its " << rowsType.getDimSize(0)
           << " rows of the result's " << resultType.getShape().back()
           << " features), got " << actual;
  return success();
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

LogicalResult CombineOp::verify() {
  auto outputsType = cast<RankedTensorType>(getExpertOutputs().getType());
  RankedTensorType weightsType = getWeights().getType();
  RankedTensorType initType = getInit().getType();
  int64_t numTokens = initType.getDimSize(0);
  int64_t modelDim = initType.getDimSize(1);

  if (Value indices = getIndices()) {
    auto indicesType = cast<RankedTensorType>(indices.getType());
    if (!compatible(weightsType.getShape(), indicesType.getShape()))
      return emitOpError("weights ")
             << weightsType << " must have the shape of the indices "
             << shapeText(indicesType.getShape());
    SmallVector<int64_t> want(indicesType.getShape());
    want.push_back(modelDim);
    if (!compatible(outputsType.getShape(), want))
      return emitOpError("expert outputs must be ")
             << shapeText(want) << " (the indices' "
             << shapeText(indicesType.getShape())
             << " rows of the destination's D = " << modelDim << "), got "
             << outputsType;
    return success();
  }

  if (weightsType.getRank() != 2)
    return emitOpError("without indices (Soft MoE) the combine weights must "
                       "be [T, E*S], got ")
           << weightsType;
  return verifySoftSlots(*this, outputsType, "expert outputs", weightsType,
                         "combine", numTokens, modelDim);
}
