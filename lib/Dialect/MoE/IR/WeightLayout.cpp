//===- WeightLayout.cpp - Layouts of moe.expert weights ---------*- C++ -*-===//
//
// This file implements #moe.packed (column panels of an expert weight) and
// the checks of moe.expert's `weight_layouts` against its operands and body.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoE.h"

#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace mlir::moe;

LogicalResult
PackedWeightAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                         int64_t panel, Type storage) {
  if (panel < 1 || panel > kMaxPanel)
    return emitError() << "#moe.packed: panel must be in [1, " << kMaxPanel
                       << "] columns, got " << panel;
  if (storage && !storage.isBF16() && !storage.isSignlessInteger(8))
    return emitError() << "#moe.packed: storage must be bf16 or i8 (or "
                          "absent: the body argument's element type), got "
                       << storage;
  return success();
}

RankedTensorType
PackedWeightAttr::getScaleSliceType(RankedTensorType logical) const {
  if (!isQuantized())
    return {};
  int64_t n = logical.getDimSize(1);
  return RankedTensorType::get(
      {static_cast<int64_t>(llvm::divideCeil(n, getPanel())), getPanel()},
      logical.getElementType());
}

RankedTensorType
PackedWeightAttr::getPackedSliceType(RankedTensorType logical) const {
  int64_t k = logical.getDimSize(0), n = logical.getDimSize(1);
  return RankedTensorType::get(
      {static_cast<int64_t>(llvm::divideCeil(n, getPanel())), k, getPanel()},
      getStorageType(logical.getElementType()));
}

PackedWeightAttr ExpertOp::getWeightLayout(unsigned index) {
  ArrayAttr layouts = getWeightLayoutsAttr();
  if (!layouts || index >= layouts.size())
    return {};
  return dyn_cast<PackedWeightAttr>(layouts[index]);
}

Value ExpertOp::getWeightScales(unsigned index) {
  PackedWeightAttr layout = getWeightLayout(index);
  if (!layout || !layout.isQuantized())
    return {};
  // The scales follow the quantized weights' order.
  unsigned position = 0;
  for (unsigned i = 0; i < index; ++i)
    if (PackedWeightAttr other = getWeightLayout(i))
      position += other.isQuantized();
  return position < getScales().size() ? getScales()[position] : Value();
}

LogicalResult ExpertOp::verifyWeightLayouts() {
  ArrayAttr layouts = getWeightLayoutsAttr();
  if (!layouts) {
    if (!getScales().empty())
      return emitOpError("has ")
             << getScales().size()
             << " scales operand(s) but no quantized weight: scales belong "
                "to weights whose 'weight_layouts' entry stores them as i8";
    return success();
  }
  if (layouts.size() != getWeights().size())
    return emitOpError("'weight_layouts' must have one entry per weight (")
           << getWeights().size() << "), got " << layouts.size();
  Block &body = getBody().front();
  unsigned quantized = 0;
  for (Attribute layout : layouts)
    if (auto packed = dyn_cast<PackedWeightAttr>(layout))
      quantized += packed.isQuantized();
  if (quantized != getScales().size())
    return emitOpError("needs one scales operand per quantized weight (")
           << quantized << "), got " << getScales().size();
  for (auto [index, layout] : llvm::enumerate(layouts)) {
    if (isa<UnitAttr>(layout))
      continue;
    auto packed = dyn_cast<PackedWeightAttr>(layout);
    if (!packed)
      return emitOpError("'weight_layouts' entry #")
             << index << " must be 'unit' (unpacked) or #moe.packed<...>, got "
             << layout;
    auto logical =
        dyn_cast<RankedTensorType>(body.getArgument(index + 1).getType());
    if (!logical || logical.getRank() != 2 || !logical.hasStaticShape())
      return emitOpError("packed weight #")
             << index << " needs a body argument of static shape [K, N], got "
             << body.getArgument(index + 1).getType();
    if (packed.getStorage() && !logical.getElementType().isF32())
      return emitOpError("packed weight #")
             << index << " stored as " << packed.getStorage()
             << " needs an f32 body argument (the values it is read as), got "
             << logical;
    auto weightType = cast<RankedTensorType>(getWeights()[index].getType());
    RankedTensorType slice = packed.getPackedSliceType(logical);
    SmallVector<int64_t> expected = {getNumExperts()};
    llvm::append_range(expected, slice.getShape());
    auto expectedType = RankedTensorType::get(expected, slice.getElementType());
    if (weightType != expectedType)
      return emitOpError("packed weight #")
             << index << " of the [" << logical.getDimSize(0) << ", "
             << logical.getDimSize(1) << "] body argument in panels of "
             << packed.getPanel() << " must be " << expectedType
             << " ([E, ceil(N / panel), K, panel]), got " << weightType;
    if (!packed.isQuantized())
      continue;
    RankedTensorType scaleSlice = packed.getScaleSliceType(logical);
    SmallVector<int64_t> scaleShape = {getNumExperts()};
    llvm::append_range(scaleShape, scaleSlice.getShape());
    auto expectedScales =
        RankedTensorType::get(scaleShape, scaleSlice.getElementType());
    Type scalesType = getWeightScales(index).getType();
    if (scalesType != expectedScales)
      return emitOpError("the scales of packed weight #")
             << index << " (one per output column) must be " << expectedScales
             << " ([E, ceil(N / panel), panel]), got " << scalesType;
  }
  return success();
}
