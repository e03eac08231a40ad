//===- MoEInterfaces.td - MoE attribute interfaces ---------*- tablegen -*-===//
//
// This file defines the interface every routing policy attribute implements,
// so that `moe.route` and the passes handle policies uniformly and a new
// policy only has to answer these questions.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEINTERFACES_TD
#define MOE_DIALECT_MOE_IR_MOEINTERFACES_TD

include "mlir/IR/OpBase.td"

def MoE_RoutingPolicyAttrInterface
    : AttrInterface<"RoutingPolicyAttrInterface"> {
  let cppNamespace = "::mlir::moe";
  let description = [{
    A routing policy of `moe.route`: it fixes the layout of the routing
    results and the sizes that depend on the number of tokens `T` and of
    experts `E`.
  }];
  let methods = [
    InterfaceMethod<
      "Returns the layout of the routing results (capacity, grouped, soft).",
      "::mlir::moe::RoutingLayout", "getLayout">,
    InterfaceMethod<[{
        Checks that a score matrix with `numColumns` columns suits this
        policy; reports through `emitError` otherwise.
      }],
      "::llvm::LogicalResult", "verifyScoreColumns",
      (ins "::llvm::function_ref<::mlir::InFlightDiagnostic()>":$emitError,
           "int64_t":$numColumns)>,
    InterfaceMethod<
      "Returns the number of experts for scores with `numColumns` columns.",
      "int64_t", "getNumExperts", (ins "int64_t":$numColumns)>,
    InterfaceMethod<[{
        Returns the routed size for `numTokens` tokens (dynamic when
        `numTokens` is): slots per expert `C` for the capacity layout, total
        rows `T * k` for the grouped layout, slots per expert `S` for soft.
        Fails when the size does not fit int64 or a capacity is 0 (for a
        dynamic `T`: already at `T = 1`), saying which through `emitError`
        unless it is null.
      }],
      "::mlir::FailureOr<int64_t>", "getRoutedSize",
      (ins "int64_t":$numTokens, "int64_t":$numExperts,
           "::llvm::function_ref<::mlir::InFlightDiagnostic()>":$emitError)>,
  ];
}

#endif // MOE_DIALECT_MOE_IR_MOEINTERFACES_TD
