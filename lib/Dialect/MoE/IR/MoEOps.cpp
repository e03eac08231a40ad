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
#include "llvm/Support/CheckedArithmetic.h"
#include "llvm/Support/MathExtras.h"

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

LogicalResult
mlir::moe::verifyTensorSizes(function_ref<InFlightDiagnostic()> emitError,
                             StringRef what, ShapedType type,
                             ArrayRef<StringRef> dimNames) {
  ArrayRef<int64_t> shape = type.getShape();
  for (auto [index, dim] : llvm::enumerate(shape)) {
    if (dim != 0)
      continue;
    InFlightDiagnostic diag = emitError();
    if (index < dimNames.size())
      diag << dimNames[index];
    else
      diag << "dimension #" << index;
    diag << " is 0 in " << what << " " << type
         << "; every static size of a layer must be at least 1 (with no "
            "tokens, features, hidden units or experts there is nothing to "
            "compute)";
    if (index < dimNames.size() && dimNames[index] == "T")
      diag << "; write a token count that is only known at run time, and "
              "may be 0, as '?'";
    return diag;
  }
  // Products of the static sizes, as the lowerings compute them (element
  // counts, then bytes), must not wrap.
  auto staticSizes = [&] {
    std::string text;
    llvm::raw_string_ostream os(text);
    llvm::interleave(
        llvm::make_filter_range(
            shape, [](int64_t dim) { return !ShapedType::isDynamic(dim); }),
        os, " * ");
    return text;
  };
  int64_t elements = 1;
  for (int64_t dim : shape) {
    if (ShapedType::isDynamic(dim))
      continue;
    std::optional<int64_t> product = llvm::checkedMul(elements, dim);
    if (!product)
      return emitError() << "too many elements in " << what << " " << type
                         << ": " << staticSizes()
                         << " overflows int64; use smaller sizes";
    elements = *product;
  }
  Type elementType = type.getElementType();
  if (!elementType.isIntOrFloat())
    return success();
  int64_t bytes =
      llvm::divideCeil(elementType.getIntOrFloatBitWidth(), uint64_t{8});
  if (!llvm::checkedMul(elements, bytes))
    return emitError() << "too many bytes in " << what << " " << type << ": "
                       << staticSizes() << " elements of " << bytes
                       << " bytes overflow int64; use smaller sizes";
  return success();
}

/// Verifies the sizes of `value`'s tensor type with verifyTensorSizes,
/// reporting on `op`.
static LogicalResult verifySizes(Operation *op, StringRef what, Value value,
                                 ArrayRef<StringRef> dimNames = {}) {
  auto type = dyn_cast<ShapedType>(value.getType());
  if (!type || !type.hasRank())
    return success();
  return verifyTensorSizes([op] { return op->emitOpError(); }, what, type,
                           dimNames);
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
  if (failed(verifySizes(*this, "the scores", getScores(),
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
    if (failed(verifySizes(*this, what, result, dims)))
      return failure();
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
  std::optional<int64_t> numSlots =
      llvm::checkedMul(numExperts, slotsPerExpert);
  if (!numSlots)
    return op->emitOpError("has E * S = ")
           << numExperts << " * " << slotsPerExpert << " slots in the "
           << slotsName << ", which overflows int64; use fewer slots";
  if (!compatible(weights.getDimSize(1), *numSlots))
    return op->emitOpError("has E * S = ")
           << numExperts << " * " << slotsPerExpert << " = " << *numSlots
           << " slots in the " << slotsName << ", but the " << weightsName
           << " weights have " << weights.getDimSize(1) << " columns";
  if (!compatible(slots.getDimSize(2), modelDim))
    return op->emitOpError("feature size ")
           << slots.getDimSize(2) << " of the " << slotsName
           << " must match the tokens' D = " << modelDim;
  return success();
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

/// Names the dimensions of routing indices (or gates) in messages.
static ArrayRef<StringRef> indexDims(Value indices) {
  static const StringRef capacity[] = {"E", "C"};
  static const StringRef grouped[] = {"T*k"};
  if (cast<ShapedType>(indices.getType()).getRank() == 2)
    return capacity;
  return grouped;
}

/// Names the dimensions of expert rows (dispatched tokens, expert inputs or
/// outputs) in messages: `[E, C, D]` with `indices` or from Soft MoE
/// (`[E, S, D]`), `[T*k, D]` grouped.
static ArrayRef<StringRef> rowsDims(Value rows, Value indices) {
  static const StringRef capacity[] = {"E", "C", "D"};
  static const StringRef soft[] = {"E", "S", "D"};
  static const StringRef grouped[] = {"T*k", "D"};
  if (cast<ShapedType>(rows.getType()).getRank() == 2)
    return grouped;
  return indices ? capacity : soft;
}

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
  if (failed(verifySizes(*this, "the tokens", getTokens(), {"T", "D"})))
    return failure();
  if (indices &&
      failed(verifySizes(*this, "the indices", indices, indexDims(indices))))
    return failure();
  if (weights &&
      failed(verifySizes(*this, "the dispatch weights", weights, {"T", "E*S"})))
    return failure();
  if (failed(verifySizes(*this, "the result", getResult(),
                         rowsDims(getResult(), indices))))
    return failure();
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

  static const StringRef rowDims3[] = {"E", "C", "D"};
  static const StringRef rowDims2[] = {"T*k", "D"};
  ArrayRef<StringRef> rowDims = rank == 3 ? ArrayRef(rowDims3) : rowDims2;
  if (failed(verifySizes(*this, "the inputs", getInputs(), rowDims)))
    return failure();
  if (Value offsets = getOffsets();
      offsets && failed(verifySizes(*this, "the offsets", offsets, {"E+1"})))
    return failure();
  for (auto [index, weight] : llvm::enumerate(getWeights()))
    if (failed(verifySizes(*this, ("weight #" + Twine(index)).str(), weight,
                           {"E"})))
      return failure();
  if (resultType.getRank() == rank &&
      failed(verifySizes(*this, "the result", getResult(), rowDims)))
    return failure();

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
  if (numExperts == 0)
    return emitOpError("offsets ")
           << getOffsets().getType()
           << " give E = 0 experts; the grouped layout has E + 1 offsets "
              "for E >= 1 experts";

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
  Value routingIndices = getIndices();
  if (failed(verifySizes(*this, "the destination", getInit(), {"T", "D"})))
    return failure();
  if (failed(verifySizes(*this, "the expert outputs", getExpertOutputs(),
                         rowsDims(getExpertOutputs(), routingIndices))))
    return failure();
  if (routingIndices && failed(verifySizes(*this, "the indices", routingIndices,
                                           indexDims(routingIndices))))
    return failure();
  if (failed(verifySizes(*this, "the weights", getWeights(),
                         routingIndices ? indexDims(routingIndices)
                                        : ArrayRef<StringRef>{"T", "E*S"})))
    return failure();
  int64_t numTokens = initType.getDimSize(0);
  int64_t modelDim = initType.getDimSize(1);

  if (Value indices = routingIndices) {
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
