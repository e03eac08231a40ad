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
                         int64_t panel, Type storage, int64_t group,
                         Type activations, Type scales) {
  if (panel < 1 || panel > kMaxPanel)
    return emitError() << "#moe.packed: panel must be in [1, " << kMaxPanel
                       << "] columns, got " << panel;
  bool nibbles = storage && storage.isSignlessInteger(4);
  if (storage && !storage.isBF16() && !storage.isSignlessInteger(8) && !nibbles)
    return emitError() << "#moe.packed: storage must be bf16, i8 or i4 (or "
                          "absent: the body argument's element type), got "
                       << storage;
  if (nibbles && group < 1)
    return emitError() << "#moe.packed: storage = i4 needs a group >= 1 "
                          "(rows along K per scale), got "
                       << group;
  if (nibbles && panel % 2 != 0)
    return emitError() << "#moe.packed: storage = i4 stores two columns per "
                          "byte and needs an even panel, got "
                       << panel;
  if (!nibbles && group != 0)
    return emitError() << "#moe.packed: group (" << group
                       << ") is only for storage = i4";
  if (activations && !activations.isSignlessInteger(8))
    return emitError() << "#moe.packed: activations must be i8 (int8 rows "
                          "for the integer dot product), got "
                       << activations;
  if (activations && (!nibbles || group % 4 != 0))
    return emitError() << "#moe.packed: activations = i8 needs storage = i4 "
                          "and a group that is a multiple of 4 (rows are "
                          "stored four by four), got storage = "
                       << storage << ", group = " << group;
  if (scales && !scales.isF16())
    return emitError() << "#moe.packed: scales must be f16 (or absent: the "
                          "body argument's element type), got "
                       << scales;
  if (scales && !(nibbles || (storage && storage.isSignlessInteger(8)))) {
    InFlightDiagnostic diag = emitError()
                              << "#moe.packed: scales = f16 is for quantized "
                                 "weights (storage = i8 or i4), got ";
    if (storage)
      diag << "storage = " << storage;
    else
      diag << "no storage";
    return diag;
  }
  return success();
}

RankedTensorType
PackedWeightAttr::getScaleSliceType(RankedTensorType logical) const {
  if (!isQuantized())
    return {};
  int64_t n = logical.getDimSize(1);
  auto panels = static_cast<int64_t>(llvm::divideCeil(n, getPanel()));
  if (isNibbles())
    return RankedTensorType::get(
        {panels, logical.getDimSize(0) / getGroup(), getPanel()},
        getScaleType(logical.getElementType()));
  return RankedTensorType::get({panels, getPanel()},
                               getScaleType(logical.getElementType()));
}

RankedTensorType
PackedWeightAttr::getPackedSliceType(RankedTensorType logical) const {
  int64_t k = logical.getDimSize(0), n = logical.getDimSize(1);
  int64_t rowElements = isNibbles() ? getPanel() / 2 : getPanel();
  return RankedTensorType::get(
      {static_cast<int64_t>(llvm::divideCeil(n, getPanel())), k, rowElements},
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
                "to weights whose 'weight_layouts' entry stores them as i8 or "
                "i4";
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
    if (packed.isNibbles() && logical.getDimSize(0) % packed.getGroup() != 0)
      return emitOpError("packed weight #")
             << index << " in groups of " << packed.getGroup()
             << " rows needs K divisible by the group, got K = "
             << logical.getDimSize(0);
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
             << index
             << (packed.isNibbles() ? " (one per group and output column)"
                                    : " (one per output column)")
             << " must be " << expectedScales
             << (packed.isNibbles()
                     ? " ([E, ceil(N / panel), K / group, panel])"
                     : " ([E, ceil(N / panel), panel])")
             << ", got " << scalesType;
  }
  return success();
}
