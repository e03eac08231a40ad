//===- MoEAttrs.cpp - MoE routing policies ----------------------*- C++ -*-===//
//
// This file implements the routing policy attributes: their parameter
// syntax, their verifiers, and the RoutingPolicyAttrInterface.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/CheckedArithmetic.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace mlir;
using namespace mlir::moe;

#include "moe/Dialect/MoE/IR/MoEAttrInterfaces.cpp.inc"
#include "moe/Dialect/MoE/IR/MoEEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "moe/Dialect/MoE/IR/MoEAttrs.cpp.inc"

void MoEDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "moe/Dialect/MoE/IR/MoEAttrs.cpp.inc"
      >();
}

double mlir::moe::computeCapacitySlots(double capacityFactor, int64_t topK,
                                       int64_t numTokens, int64_t numExperts) {
  return capacityFactor * static_cast<double>(topK) *
         static_cast<double>(numTokens) / static_cast<double>(numExperts);
}

FailureOr<int64_t> mlir::moe::computeCapacity(double capacityFactor,
                                              int64_t topK, int64_t numTokens,
                                              int64_t numExperts) {
  if (ShapedType::isDynamic(numTokens))
    return ShapedType::kDynamic;
  double capacity = std::ceil(
      computeCapacitySlots(capacityFactor, topK, numTokens, numExperts));
  // 2^63 is the first double past INT64_MAX; a NaN fails the test too.
  if (!(capacity >= 0.0 && capacity < 0x1p63))
    return failure();
  return static_cast<int64_t>(capacity);
}

/// The capacity C of a capacity-layout policy for `numTokens` tokens
/// (dynamic when it is), or failure, reported through `emitError` unless it
/// is null, when C does not fit int64 or is 0. For a dynamic T, C is checked
/// at T = 1: C never decreases as T grows, so C(1) >= 1 means C >= 1 for
/// every T >= 1.
static FailureOr<int64_t>
getCheckedCapacity(double capacityFactor, int64_t topK, int64_t numTokens,
                   int64_t numExperts,
                   function_ref<InFlightDiagnostic()> emitError) {
  bool dynamic = ShapedType::isDynamic(numTokens);
  int64_t tokens = dynamic ? 1 : numTokens;
  FailureOr<int64_t> capacity =
      computeCapacity(capacityFactor, topK, tokens, numExperts);
  if (succeeded(capacity) && (*capacity > 0 || tokens == 0))
    return dynamic ? ShapedType::kDynamic : *capacity;
  if (!emitError)
    return failure();
  InFlightDiagnostic diag = emitError();
  diag << "capacity C = ceil(capacity_factor * k * T / E) = ceil("
       << moe::detail::formatF64(capacityFactor) << " * " << topK << " * "
       << tokens << " / " << numExperts << ")";
  if (failed(capacity))
    return diag << " = "
                << moe::detail::formatF64(std::ceil(computeCapacitySlots(
                       capacityFactor, topK, tokens, numExperts)))
                << " does not fit int64; lower capacity_factor"
                << (dynamic ? "" : " or the token count T");
  return diag << " is 0" << (dynamic ? " already at T = 1" : "")
              << " (the product underflows in f64), so no expert would have "
                 "a slot; raise capacity_factor so that C >= 1"
              << (dynamic ? " for every T >= 1" : "");
}

//===----------------------------------------------------------------------===//
// Parameter syntax
//===----------------------------------------------------------------------===//

FailureOr<APFloat> mlir::moe::detail::parseF64Parameter(AsmParser &parser) {
  // Accept `2` as well as `2.0`: factors are often whole numbers. A
  // hexadecimal integer is, as everywhere in MLIR, the bit pattern of the
  // double (`0x3FF0000000000000` is 1.0, `0x7FF0000000000000` is inf), so
  // that the verifiers see the value it denotes.
  SMLoc start = parser.getCurrentLocation();
  bool negative = succeeded(parser.parseOptionalMinus());
  SMLoc literal = parser.getCurrentLocation();
  APInt integer;
  OptionalParseResult parsedInteger = parser.parseOptionalInteger(integer);
  if (parsedInteger.has_value()) {
    if (failed(*parsedInteger))
      return failure();
    // The spelling of the integer token: from its start to the next token.
    StringRef spelling(literal.getPointer(),
                       parser.getCurrentLocation().getPointer() -
                           literal.getPointer());
    if (spelling.trim().starts_with_insensitive("0x")) {
      if (negative)
        return parser.emitError(start,
                                "a hexadecimal float literal gives the bits "
                                "of an f64 and takes no leading minus");
      if (integer.getActiveBits() > 64)
        return parser.emitError(literal, "hexadecimal float literal ")
               << spelling.trim() << " has more than the 64 bits of an f64";
      return APFloat(APFloat::IEEEdouble(), integer.zextOrTrunc(64));
    }
    APFloat value(APFloat::IEEEdouble());
    (void)value.convertFromAPInt(integer, /*IsSigned=*/false,
                                 APFloat::rmNearestTiesToEven);
    if (negative)
      value.changeSign();
    return value;
  }
  double value;
  if (parser.parseFloat(value))
    return failure();
  return APFloat(negative ? -value : value);
}

FailureOr<std::optional<APFloat>>
mlir::moe::detail::parseOptionalF64Parameter(AsmParser &parser) {
  FailureOr<APFloat> value = parseF64Parameter(parser);
  if (failed(value))
    return failure();
  return std::optional<APFloat>(*value);
}

void mlir::moe::detail::printF64Parameter(AsmPrinter &printer,
                                          const APFloat &apValue) {
  printer << formatF64(apValue.convertToDouble());
}

std::string mlir::moe::detail::formatF64(double value) {
  if (!std::isfinite(value))
    return std::isnan(value) ? "nan" : (value > 0 ? "inf" : "-inf");
  // The shortest decimal that reads back to the same double (1.25, not
  // 1.250000e+00), spelled as an MLIR float literal (always with a '.').
  char buffer[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof(buffer), "%.*g", precision, value);
    if (std::strtod(buffer, nullptr) == value)
      break;
  }
  std::string text(buffer);
  if (text.find_first_of(".e") == std::string::npos)
    text += ".0";
  else if (text.find('.') == std::string::npos)
    text.insert(text.find('e'), ".0");
  return text;
}

FailureOr<bool> mlir::moe::detail::parseBoolParameter(AsmParser &parser) {
  if (succeeded(parser.parseOptionalKeyword("true")))
    return true;
  if (succeeded(parser.parseOptionalKeyword("false")))
    return false;
  return parser.emitError(parser.getCurrentLocation(),
                          "expected 'true' or 'false'");
}

//===----------------------------------------------------------------------===//
// TokenChoiceAttr
//===----------------------------------------------------------------------===//

static bool isPositiveFinite(double value) {
  return std::isfinite(value) && value > 0.0;
}

LogicalResult TokenChoiceAttr::verify(
    function_ref<InFlightDiagnostic()> emitError, int64_t topK,
    std::optional<APFloat> capacityFactorAP, ScoreFunction score,
    bool normalize, CapacityOrder order, int64_t nGroup,
    std::optional<int64_t> topkGroup, APFloat routedScalingFactorAP) {
  std::optional<double> capacityFactor;
  if (capacityFactorAP)
    capacityFactor = capacityFactorAP->convertToDouble();
  double routedScalingFactor = routedScalingFactorAP.convertToDouble();
  if (topK < 1)
    return emitError() << "top_k must be at least 1, got " << topK;
  if (capacityFactor && !isPositiveFinite(*capacityFactor))
    return emitError() << "capacity_factor must be a positive finite number, "
                          "got "
                       << detail::formatF64(*capacityFactor)
                       << "; omit it for dropless routing";
  if (!capacityFactor && order == CapacityOrder::Priority)
    return emitError() << "order = priority needs a capacity_factor: dropless "
                          "routing drops nothing, so the fill order has no "
                          "effect";
  if (nGroup < 1)
    return emitError() << "n_group must be at least 1, got " << nGroup;
  if (topkGroup && (*topkGroup < 1 || *topkGroup > nGroup))
    return emitError() << "topk_group must be in [1, n_group = " << nGroup
                       << "], got " << *topkGroup;
  if (!isPositiveFinite(routedScalingFactor))
    return emitError()
           << "routed_scaling_factor must be a positive finite number, got "
           << detail::formatF64(routedScalingFactor);
  return success();
}

RoutingLayout TokenChoiceAttr::getLayout() const {
  return isDropless() ? RoutingLayout::Grouped : RoutingLayout::Capacity;
}

LogicalResult TokenChoiceAttr::verifyScoreColumns(
    function_ref<InFlightDiagnostic()> emitError, int64_t numColumns) const {
  int64_t numExperts = numColumns;
  if (getTopK() > numExperts)
    return emitError() << "top_k = " << getTopK()
                       << " exceeds the number of experts E = " << numExperts;
  int64_t nGroup = getNGroup();
  if (numExperts % nGroup != 0)
    return emitError() << "n_group = " << nGroup
                       << " does not divide the number of experts E = "
                       << numExperts;
  if (nGroup == 1)
    return success();
  int64_t groupSize = numExperts / nGroup;
  if (groupSize < 2)
    return emitError() << "grouped routing scores a group by its two largest "
                          "experts, but n_group = "
                       << nGroup << " leaves " << groupSize
                       << " expert per group (E = " << numExperts << ")";
  int64_t selectable = getEffectiveTopkGroup() * groupSize;
  if (getTopK() > selectable)
    return emitError() << "top_k = " << getTopK() << " exceeds the "
                       << selectable << " experts of the topk_group = "
                       << getEffectiveTopkGroup() << " kept groups";
  return success();
}

int64_t TokenChoiceAttr::getNumExperts(int64_t numColumns) const {
  return numColumns;
}

FailureOr<int64_t> TokenChoiceAttr::getRoutedSize(
    int64_t numTokens, int64_t numExperts,
    function_ref<InFlightDiagnostic()> emitError) const {
  if (std::optional<double> capacityFactor = getCapacityFactorValue())
    return getCheckedCapacity(*capacityFactor, getTopK(), numTokens, numExperts,
                              emitError);
  if (ShapedType::isDynamic(numTokens))
    return ShapedType::kDynamic;
  if (std::optional<int64_t> rows = llvm::checkedMul(numTokens, getTopK()))
    return *rows;
  if (emitError)
    emitError() << "dropless routing has T * top_k = " << numTokens << " * "
                << getTopK()
                << " assignments, which overflows int64; route fewer tokens "
                   "at a time";
  return failure();
}

//===----------------------------------------------------------------------===//
// ExpertChoiceAttr
//===----------------------------------------------------------------------===//

LogicalResult
ExpertChoiceAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                         APFloat capacityFactorAP, bool normalize) {
  double capacityFactor = capacityFactorAP.convertToDouble();
  if (!isPositiveFinite(capacityFactor))
    return emitError()
           << "capacity_factor must be a positive finite number, got "
           << detail::formatF64(capacityFactor);
  return success();
}

RoutingLayout ExpertChoiceAttr::getLayout() const {
  return RoutingLayout::Capacity;
}

LogicalResult ExpertChoiceAttr::verifyScoreColumns(
    function_ref<InFlightDiagnostic()> emitError, int64_t numColumns) const {
  return success();
}

int64_t ExpertChoiceAttr::getNumExperts(int64_t numColumns) const {
  return numColumns;
}

FailureOr<int64_t> ExpertChoiceAttr::getRoutedSize(
    int64_t numTokens, int64_t numExperts,
    function_ref<InFlightDiagnostic()> emitError) const {
  return getCheckedCapacity(getCapacityFactorValue(), /*topK=*/1, numTokens,
                            numExperts, emitError);
}

//===----------------------------------------------------------------------===//
// SoftAttr
//===----------------------------------------------------------------------===//

LogicalResult SoftAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               int64_t slotsPerExpert) {
  if (slotsPerExpert < 1)
    return emitError() << "slots_per_expert must be at least 1, got "
                       << slotsPerExpert;
  return success();
}

RoutingLayout SoftAttr::getLayout() const { return RoutingLayout::Soft; }

LogicalResult
SoftAttr::verifyScoreColumns(function_ref<InFlightDiagnostic()> emitError,
                             int64_t numColumns) const {
  if (numColumns % getSlotsPerExpert() != 0)
    return emitError() << "Soft MoE scores have " << numColumns
                       << " columns, which is not a multiple of "
                          "slots_per_expert = "
                       << getSlotsPerExpert();
  return success();
}

int64_t SoftAttr::getNumExperts(int64_t numColumns) const {
  return numColumns / getSlotsPerExpert();
}

FailureOr<int64_t>
SoftAttr::getRoutedSize(int64_t numTokens, int64_t numExperts,
                        function_ref<InFlightDiagnostic()> emitError) const {
  return getSlotsPerExpert();
}
