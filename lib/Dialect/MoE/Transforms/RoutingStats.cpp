//===- RoutingStats.cpp - moe-routing-stats ---------------------*- C++ -*-===//
//
// This file reports, per moe.route, the capacity, the rows and FLOPs of the
// experts, and the sizes of the dispatch and expert-output buffers.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/TypeUtilities.h"

#include <optional>

namespace mlir::moe {
#define GEN_PASS_DEF_MOEROUTINGSTATS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

/// FLOPs per row of the expert body: 2 per multiply-add of every linalg op
/// with a reduction, with the row loop (the one dynamic or row-sized loop)
/// factored out. None when the count depends on another dynamic size.
static std::optional<int64_t> flopsPerRow(ExpertOp expert) {
  int64_t rows = expert.getExpertRowsType().getDimSize(0);
  int64_t total = 0;
  WalkResult walk = expert.getBody().walk([&](linalg::LinalgOp op) {
    if (op.getNumReductionLoops() == 0)
      return WalkResult::advance();
    int64_t product = 1;
    bool rowsFactored = false;
    for (int64_t range : op.getStaticLoopRanges()) {
      if (!rowsFactored && (ShapedType::isDynamic(range) || range == rows)) {
        rowsFactored = true;
        continue;
      }
      if (ShapedType::isDynamic(range))
        return WalkResult::interrupt();
      product *= range;
    }
    total += 2 * product;
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return std::nullopt;
  return total;
}

static int64_t bytesOf(Type type) {
  return llvm::divideCeil(getElementTypeOrSelf(type).getIntOrFloatBitWidth(),
                          8);
}

namespace {
struct MoERoutingStatsPass
    : moe::impl::MoERoutingStatsBase<MoERoutingStatsPass> {
  using Base::Base;

  void runOnOperation() override {
    getOperation()->walk([&](RouteOp route) { report(route); });
  }

  void report(RouteOp route) {
    RoutingPolicyAttrInterface policy = route.getPolicy();
    int64_t numTokens = route.getScores().getType().getDimSize(0);
    bool evaluated = ShapedType::isDynamic(numTokens) && tokens > 0;
    if (evaluated)
      numTokens = tokens;
    int64_t numExperts = route.getNumExperts();
    int64_t routed = policy.getRoutedSize(numTokens, numExperts);

    InFlightDiagnostic remark = route.emitRemark("routing stats: ");
    remark << "policy = " << Attribute(policy) << ", T = ";
    if (ShapedType::isDynamic(numTokens)) {
      remark << "? (sizes per token; set tokens=N to evaluate)";
    } else {
      remark << numTokens << (evaluated ? " (from tokens=)" : "");
    }
    remark << ", E = " << numExperts;

    // Rows the experts compute, and how many of them are real assignments.
    int64_t rows = ShapedType::kDynamic, assignments = ShapedType::kDynamic;
    switch (policy.getLayout()) {
    case RoutingLayout::Capacity: {
      if (!ShapedType::isDynamic(routed)) {
        rows = numExperts * routed;
        int64_t topK = 1;
        if (auto tokenChoice = dyn_cast<TokenChoiceAttr>(policy))
          topK = tokenChoice.getTopK();
        assignments = isa<ExpertChoiceAttr>(policy)
                          ? numExperts * std::min(routed, numTokens)
                          : std::min(rows, numTokens * topK);
      }
      remark << ", C = ";
      if (ShapedType::isDynamic(routed))
        remark << "?";
      else
        remark << routed;
      break;
    }
    case RoutingLayout::Grouped:
      rows = assignments = routed;
      remark << ", C = dropless";
      break;
    case RoutingLayout::Soft:
      rows = assignments = numExperts * routed;
      remark << ", S = " << routed;
      break;
    }
    auto printSize = [&](int64_t value) {
      if (ShapedType::isDynamic(value))
        remark << "?";
      else
        remark << value;
    };
    remark << ", expert rows = ";
    printSize(rows);
    remark << " (at most ";
    printSize(assignments);
    remark << " token assignments)";

    // The expert FLOPs and buffers, from the layer's dispatch and experts.
    std::optional<int64_t> flops = 0;
    int64_t dispatchBytes = 0, outputBytes = 0;
    bool foundExpert = false;
    for (Value result : route.getResults()) {
      for (Operation *user : result.getUsers()) {
        auto dispatch = dyn_cast<DispatchOp>(user);
        if (!dispatch)
          continue;
        auto type = cast<RankedTensorType>(dispatch.getResult().getType());
        int64_t rowWidth = type.getShape().back();
        dispatchBytes +=
            ShapedType::isDynamic(rows) ? 0 : rows * rowWidth * bytesOf(type);
        for (Operation *dispatchUser : dispatch.getResult().getUsers()) {
          auto expert = dyn_cast<ExpertOp>(dispatchUser);
          if (!expert)
            continue;
          foundExpert = true;
          std::optional<int64_t> perRow = flopsPerRow(expert);
          if (!perRow || ShapedType::isDynamic(rows))
            flops = std::nullopt;
          else if (flops)
            *flops += *perRow * rows;
          auto outType = cast<RankedTensorType>(expert.getResult().getType());
          if (!ShapedType::isDynamic(rows))
            outputBytes += rows * outType.getShape().back() * bytesOf(outType);
        }
      }
    }
    if (!foundExpert)
      return;
    remark << ", expert FLOPs = ";
    if (flops)
      remark << *flops;
    else
      remark << "?";
    if (ShapedType::isDynamic(rows)) {
      remark << ", dispatch buffer = ? bytes, expert output buffer = ? bytes";
      return;
    }
    remark << ", dispatch buffer = " << dispatchBytes
           << " bytes, expert output buffer = " << outputBytes << " bytes";
  }
};
} // namespace
