//===- MoEOps.cpp - MoE dialect ops -----------------------------*- C++ -*-===//
//
// This file implements the builders, accessors and verifiers of the ops
// that consume a routing: moe.dispatch, moe.expert and moe.combine (moe.route
// is in RouteOp.cpp). The verifiers check that every consumer agrees with
// the routing's shapes (E, C, D, slots) and say which sizes disagree.
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
  if (failed(verifyValueSizes(*this, "the tokens", getTokens(), {"T", "D"})))
    return failure();
  if (indices && failed(verifyValueSizes(*this, "the indices", indices,
                                         indexDims(indices))))
    return failure();
  if (weights && failed(verifyValueSizes(*this, "the dispatch weights", weights,
                                         {"T", "E*S"})))
    return failure();
  if (failed(verifyValueSizes(*this, "the result", getResult(),
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

int64_t ExpertOp::getNumExperts() {
  if (!isGrouped())
    return getInputs().getType().getDimSize(0);
  if (!getOffsets())
    return ShapedType::kDynamic;
  int64_t numOffsets = getOffsets().getType().getDimSize(0);
  return ShapedType::isDynamic(numOffsets) ? numOffsets : numOffsets - 1;
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
  if (failed(verifyValueSizes(*this, "the inputs", getInputs(), rowDims)))
    return failure();
  if (Value offsets = getOffsets();
      offsets &&
      failed(verifyValueSizes(*this, "the offsets", offsets, {"E+1"})))
    return failure();
  for (auto [index, weight] : llvm::enumerate(getWeights()))
    if (failed(verifyValueSizes(*this, ("weight #" + Twine(index)).str(),
                                weight, {"E"})))
      return failure();
  if (resultType.getRank() == rank &&
      failed(verifyValueSizes(*this, "the result", getResult(), rowDims)))
    return failure();

  int64_t numExperts = getNumExperts();
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
  if (failed(verifyWeightLayouts()))
    return failure();
  for (auto [index, weight] : llvm::enumerate(getWeights())) {
    if (getWeightLayout(index))
      continue; // Checked against the body argument above.
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
  if (failed(verifyValueSizes(*this, "the destination", getInit(), {"T", "D"})))
    return failure();
  if (failed(verifyValueSizes(*this, "the expert outputs", getExpertOutputs(),
                              rowsDims(getExpertOutputs(), routingIndices))))
    return failure();
  if (routingIndices &&
      failed(verifyValueSizes(*this, "the indices", routingIndices,
                              indexDims(routingIndices))))
    return failure();
  if (failed(verifyValueSizes(*this, "the weights", getWeights(),
                              routingIndices
                                  ? indexDims(routingIndices)
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
