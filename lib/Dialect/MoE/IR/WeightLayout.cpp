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
  if (storage && !storage.isBF16())
    return emitError() << "#moe.packed: storage must be bf16 (or absent: the "
                          "body argument's element type), got "
                       << storage;
  return success();
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

LogicalResult ExpertOp::verifyWeightLayouts() {
  ArrayAttr layouts = getWeightLayoutsAttr();
  if (!layouts)
    return success();
  if (layouts.size() != getWeights().size())
    return emitOpError("'weight_layouts' must have one entry per weight (")
           << getWeights().size() << "), got " << layouts.size();
  Block &body = getBody().front();
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
             << " needs an f32 body argument (the values it widens to), got "
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
  }
  return success();
}
