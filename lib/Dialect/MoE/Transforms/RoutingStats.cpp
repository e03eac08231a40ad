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
#include "llvm/Support/CheckedArithmetic.h"

#include <limits>
#include <optional>

namespace mlir::moe {
#define GEN_PASS_DEF_MOEROUTINGSTATS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {
/// A size in the report: a count, '?' (it depends on a dynamic size) or too
/// large for int64 (the report says so rather than print a wrapped value).
struct Count {
  int64_t value = 0;
  bool dynamic = false;
  bool overflow = false;

  static Count of(int64_t size) {
    if (ShapedType::isDynamic(size))
      return {0, /*dynamic=*/true, false};
    return {size, false, false};
  }
  static Count unknown() { return {0, /*dynamic=*/true, false}; }

  /// Combines two counts with a checked operation; overflow wins over '?'.
  template <typename Op>
  Count combine(Count other, Op op) const {
    if (overflow || other.overflow)
      return {0, false, /*overflow=*/true};
    if (dynamic || other.dynamic)
      return unknown();
    std::optional<int64_t> result = op(value, other.value);
    if (!result)
      return {0, false, /*overflow=*/true};
    return {*result, false, false};
  }
  Count operator*(Count other) const {
    return combine(other,
                   [](int64_t a, int64_t b) { return llvm::checkedMul(a, b); });
  }
  Count operator+(Count other) const {
    return combine(other,
                   [](int64_t a, int64_t b) { return llvm::checkedAdd(a, b); });
  }
  Count min(Count other) const {
    return combine(other, [](int64_t a, int64_t b) {
      return std::optional<int64_t>(std::min(a, b));
    });
  }
};

InFlightDiagnostic &operator<<(InFlightDiagnostic &diag, Count count) {
  if (count.overflow)
    return diag << "> " << std::numeric_limits<int64_t>::max()
                << " (overflows int64)";
  if (count.dynamic)
    return diag << "?";
  return diag << count.value;
}
} // namespace

/// FLOPs per row of the expert body: 2 per multiply-add of every linalg op
/// with a reduction, with the row loop (the one dynamic or row-sized loop)
/// factored out. '?' when the count depends on another dynamic size.
static Count flopsPerRow(ExpertOp expert) {
  int64_t rows = expert.getExpertRowsType().getDimSize(0);
  Count total = Count::of(0);
  expert.getBody().walk([&](linalg::LinalgOp op) {
    if (op.getNumReductionLoops() == 0)
      return;
    Count product = Count::of(2);
    bool rowsFactored = false;
    for (int64_t range : op.getStaticLoopRanges()) {
      if (!rowsFactored && (ShapedType::isDynamic(range) || range == rows)) {
        rowsFactored = true;
        continue;
      }
      product = product * Count::of(range);
    }
    total = total + product;
  });
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
    if (tokens < 0) {
      getOperation()->emitError("moe-routing-stats: tokens must be at least "
                                "0 (0 reports dynamic sizes per token), got ")
          << static_cast<int64_t>(tokens);
      return signalPassFailure();
    }
    WalkResult walk = getOperation()->walk([&](RouteOp route) {
      return failed(report(route)) ? WalkResult::interrupt()
                                   : WalkResult::advance();
    });
    if (walk.wasInterrupted())
      signalPassFailure();
  }

  LogicalResult report(RouteOp route) {
    RoutingPolicyAttrInterface policy = route.getPolicy();
    int64_t numTokens = route.getScores().getType().getDimSize(0);
    bool evaluated = ShapedType::isDynamic(numTokens) && tokens > 0;
    if (evaluated)
      numTokens = tokens;
    int64_t numExperts = route.getNumExperts();
    // A verified route has a routed size for its own T; tokens= may be too
    // many for it.
    FailureOr<int64_t> routedSize =
        policy.getRoutedSize(numTokens, numExperts, [&] {
          return route.emitError("moe-routing-stats: with tokens=")
                 << numTokens << ", ";
        });
    if (failed(routedSize))
      return failure();
    Count routed = Count::of(*routedSize);

    InFlightDiagnostic remark = route.emitRemark("routing stats: ");
    remark << "policy = " << Attribute(policy) << ", T = ";
    if (ShapedType::isDynamic(numTokens)) {
      remark << "? (sizes per token; set tokens=N to evaluate)";
    } else {
      remark << numTokens << (evaluated ? " (from tokens=)" : "");
    }
    remark << ", E = " << numExperts;

    // Rows the experts compute, and how many of them are real assignments.
    Count experts = Count::of(numExperts);
    Count rows = Count::unknown(), assignments = Count::unknown();
    switch (policy.getLayout()) {
    case RoutingLayout::Capacity: {
      rows = experts * routed;
      int64_t topK = 1;
      if (auto tokenChoice = dyn_cast<TokenChoiceAttr>(policy))
        topK = tokenChoice.getTopK();
      Count tokenCount = Count::of(numTokens);
      assignments = isa<ExpertChoiceAttr>(policy)
                        ? experts * routed.min(tokenCount)
                        : rows.min(tokenCount * Count::of(topK));
      remark << ", C = " << routed;
      break;
    }
    case RoutingLayout::Grouped:
      rows = assignments = routed;
      remark << ", C = dropless";
      break;
    case RoutingLayout::Soft:
      rows = assignments = experts * routed;
      remark << ", S = " << routed;
      break;
    }
    remark << ", expert rows = " << rows << " (at most " << assignments
           << " token assignments)";

    // The expert FLOPs and buffers, from the layer's dispatch and experts.
    Count flops = Count::of(0), dispatchBytes = Count::of(0),
          outputBytes = Count::of(0);
    bool foundExpert = false;
    for (Value result : route.getResults()) {
      for (Operation *user : result.getUsers()) {
        auto dispatch = dyn_cast<DispatchOp>(user);
        if (!dispatch)
          continue;
        auto type = cast<RankedTensorType>(dispatch.getResult().getType());
        dispatchBytes = dispatchBytes + rows *
                                            Count::of(type.getShape().back()) *
                                            Count::of(bytesOf(type));
        for (Operation *dispatchUser : dispatch.getResult().getUsers()) {
          auto expert = dyn_cast<ExpertOp>(dispatchUser);
          if (!expert)
            continue;
          foundExpert = true;
          flops = flops + flopsPerRow(expert) * rows;
          auto outType = cast<RankedTensorType>(expert.getResult().getType());
          outputBytes = outputBytes + rows *
                                          Count::of(outType.getShape().back()) *
                                          Count::of(bytesOf(outType));
        }
      }
    }
    if (!foundExpert)
      return success();
    remark << ", expert FLOPs = " << flops
           << ", dispatch buffer = " << dispatchBytes
           << " bytes, expert output buffer = " << outputBytes << " bytes";
    return success();
  }
};
} // namespace
