//===- MoEOps.td - MoE dialect ops -------------------------*- tablegen -*-===//
//
// This file defines the four ops of one MoE layer (route, dispatch, expert,
// combine) and the terminator of the expert body.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEOPS_TD
#define MOE_DIALECT_MOE_IR_MOEOPS_TD

include "moe/Dialect/MoE/IR/MoEBase.td"
include "moe/Dialect/MoE/IR/MoEAttrs.td"
include "mlir/IR/OpAsmInterface.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/DestinationStyleOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

//===----------------------------------------------------------------------===//
// Type constraints
//===----------------------------------------------------------------------===//

defvar MoE_FloatTypes = [F32, F16, BF16];

// Activations, scores and gates: f32, f16 or bf16.
def MoE_Float2DTensor : TensorRankOf<MoE_FloatTypes, [2]>;
def MoE_Float1DTensor : TensorRankOf<MoE_FloatTypes, [1]>;
def MoE_FloatTensor : RankedTensorOf<MoE_FloatTypes>;
// Token ids and offsets: i32 or i64.
def MoE_IdTensor : TensorRankOf<[I32, I64], [1, 2]>;
def MoE_Id1DTensor : TensorRankOf<[I32, I64], [1]>;

def MoE_RoutingPolicyAttr
    : Attr<CPred<"::llvm::isa<::mlir::moe::RoutingPolicyAttrInterface>($_self)">,
           "routing policy attribute"> {
  let storageType = "::mlir::moe::RoutingPolicyAttrInterface";
  let returnType = "::mlir::moe::RoutingPolicyAttrInterface";
  let convertFromStorage = "$_self";
}

//===----------------------------------------------------------------------===//
// RouteOp
//===----------------------------------------------------------------------===//

def MoE_RouteOp : MoE_Op<"route", [
    Pure, DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "turns router scores into a routing decision";
  let description = [{
    Computes the routing of one MoE layer from the router scores (logits)
    `[T, E]` (`[T, E*S]` for Soft MoE) according to `policy`. The results
    depend on the layout of the policy:

    | policy                                  | results                                              |
    |-----------------------------------------|------------------------------------------------------|
    | `token_choice` with `capacity_factor`   | token ids `[E, C]`, gates `[E, C]`                   |
    | `expert_choice`                         | token ids `[E, C]`, gates `[E, C]`                   |
    | `token_choice` without (dropless)       | token ids `[T*k]`, gates `[T*k]`, offsets `[E+1]`    |
    | `soft`                                  | dispatch weights `[T, E*S]`, combine weights `[T, E*S]` |

    `C` follows from the policy and `T`: it is static when `T` is and `?`
    otherwise. Token ids and offsets are `i32` or `i64` (both the same);
    gates have the element type of the scores. In the capacity layout an
    empty slot holds token id `-1` and gate `0`. In the grouped layout, the
    assignments of expert `e` are rows `offsets[e]` to `offsets[e+1]`,
    ordered by token id.

    The optional `bias` (`[E]`, token choice only) is added to the scores
    when experts are *selected* but not to the gates (DeepSeek-V3's
    auxiliary-loss-free load balancing).

    Example:

    ```mlir
    %ids, %gates = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.0> %logits
        : tensor<16x8xf32> -> tensor<8x4xi32>, tensor<8x4xf32>
    %rows, %g, %offsets = moe.route #moe.token_choice<top_k = 2> %logits
        : tensor<?x8xf32> -> tensor<?xi32>, tensor<?xf32>, tensor<9xi32>
    ```
  }];
  let arguments = (ins MoE_Float2DTensor:$scores,
                       Optional<MoE_Float1DTensor>:$bias,
                       MoE_RoutingPolicyAttr:$policy);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    $policy $scores (`bias` `(` $bias^ `:` type($bias) `)`)? attr-dict
    `:` type($scores) `->` type($results)
  }];
  let builders = [
    // Computes the result types from the policy, the scores and `idType`.
    OpBuilder<(ins "::mlir::moe::RoutingPolicyAttrInterface":$policy,
                   "::mlir::Value":$scores,
                   CArg<"::mlir::Value", "{}">:$bias,
                   CArg<"::mlir::Type", "{}">:$idType)>
  ];
  let extraClassDeclaration = [{
    /// Returns the layout of the results (from the policy).
    RoutingLayout getLayout() { return getPolicy().getLayout(); }
    /// Returns the number of experts.
    int64_t getNumExperts();
    /// Sparse layouts: token ids, gates and (grouped only) offsets.
    ::mlir::TypedValue<::mlir::RankedTensorType> getTokenIds();
    ::mlir::TypedValue<::mlir::RankedTensorType> getGates();
    ::mlir::TypedValue<::mlir::RankedTensorType> getOffsets();
    /// Soft layout: dispatch and combine weights.
    ::mlir::TypedValue<::mlir::RankedTensorType> getDispatchWeights();
    ::mlir::TypedValue<::mlir::RankedTensorType> getCombineWeights();
    /// Computes the result types of a route with these inputs (`idType`
    /// null: i32). Fails when a size does not fit int64 or a capacity is 0,
    /// saying which through `emitError` unless it is null.
    static ::mlir::FailureOr<::llvm::SmallVector<::mlir::Type>>
    inferResultTypes(RoutingPolicyAttrInterface policy,
                     ::mlir::RankedTensorType scoresType,
                     ::mlir::Type idType,
                     ::llvm::function_ref<::mlir::InFlightDiagnostic()>
                         emitError = {});
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

def MoE_DispatchOp : MoE_Op<"dispatch", [Pure, AttrSizedOperandSegments]> {
  let summary = "moves tokens to the experts";
  let description = [{
    Builds the expert inputs from the tokens `[T, D]` and the routing; the
    result keeps the element type of the tokens. Exactly one of `indices`
    and `weights` is given:

    * `indices` `[E, C]` (capacity layout): the result is `[E, C, D]`, row
      `(e, c)` is token `indices[e, c]`, and a zero row when the id is
      outside `[0, T)` (an empty slot);
    * `indices` `[N]` (grouped layout): the result is `[N, D]`, row `i` is
      token `indices[i]`;
    * `weights` `[T, E*S]` (Soft MoE dispatch weights): the result is the
      slots `[E, S, D]`, `slots = weights^T * tokens`, accumulated in f32.

    Example:

    ```mlir
    %xe = moe.dispatch %x indices(%ids : tensor<8x4xi32>)
        : tensor<16x64xf32> -> tensor<8x4x64xf32>
    %xs = moe.dispatch %x weights(%d : tensor<16x8xf32>)
        : tensor<16x64xf32> -> tensor<4x2x64xf32>
    ```
  }];
  let arguments = (ins MoE_Float2DTensor:$tokens,
                       Optional<MoE_IdTensor>:$indices,
                       Optional<MoE_Float2DTensor>:$weights);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $tokens (`indices` `(` $indices^ `:` type($indices) `)`)?
    (`weights` `(` $weights^ `:` type($weights) `)`)? attr-dict
    `:` type($tokens) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// ExpertOp
//===----------------------------------------------------------------------===//

def MoE_ExpertOp : MoE_Op<"expert", [
    AttrSizedOperandSegments, IsolatedFromAbove, RecursiveMemoryEffects,
    SingleBlock]> {
  let summary = "applies every expert to its inputs";
  let description = [{
    Applies `E` experts to their inputs. The region is *one* expert written
    on tensors: its block arguments are the expert's rows and the expert's
    slice of every weight (the weight type without its leading `E`
    dimension), and it yields the expert's output rows. The body must treat
    rows independently (row `r` of the output depends only on row `r` of the
    input), which is what lets lowerings tile and gather rows freely; every
    FFN satisfies this.

    The inputs come from `moe.dispatch`:

    * `[E, R, D]` (capacity layout with `R = C`, soft with `R = S`): the
      expert's rows are `tensor<R x D>` and the result is `[E, R, D']`;
    * `[N, D]` with `offsets` `[E+1]` (grouped layout): expert `e` gets rows
      `offsets[e]` to `offsets[e+1]` as `tensor<? x D>` and the result is
      `[N, D']`.

    Every weight has `E` as its leading dimension. The body is isolated
    from above: everything it uses is an argument or defined inside.

    `weight_layouts`, when present, has one entry per weight: `unit` for a
    weight stored as the body reads it, or a layout such as
    `#moe.packed<panel = P>` for a weight stored packed (its operand type is
    then the packed one, and the body argument stays the logical matrix).
    A weight whose layout stores it quantized (`storage = i8`) has its
    scales in `scales`: one operand per quantized weight, in the order of
    the weights.

    Example (a two-layer ReLU FFN):

    ```mlir
    %ye = moe.expert %xe weights(%w1, %w2 : tensor<8x64x128xf32>, tensor<8x128x64xf32>)
        : tensor<8x4x64xf32> -> tensor<8x4x64xf32> {
    ^bb0(%x: tensor<4x64xf32>, %a: tensor<64x128xf32>, %b: tensor<128x64xf32>):
      %e0 = tensor.empty() : tensor<4x128xf32>
      %h0 = linalg.matmul ins(%x, %a : tensor<4x64xf32>, tensor<64x128xf32>)
                          outs(%e0 : tensor<4x128xf32>) -> tensor<4x128xf32>
      ...
      moe.yield %y : tensor<4x64xf32>
    }
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$inputs,
                       Optional<MoE_Id1DTensor>:$offsets,
                       Variadic<AnyRankedTensor>:$weights,
                       Variadic<AnyRankedTensor>:$scales,
                       OptionalAttr<ArrayAttr>:$weight_layouts);
  let results = (outs MoE_FloatTensor:$result);
  let regions = (region SizedRegion<1>:$body);
  let builders = [
    // Every weight stored as the body reads it.
    OpBuilder<(ins "::mlir::Type":$result, "::mlir::Value":$inputs,
                   "::mlir::Value":$offsets, "::mlir::ValueRange":$weights), [{
      build($_builder, $_state, result, inputs, offsets, weights,
            ::mlir::ValueRange(), ::mlir::ArrayAttr());
    }]>
  ];
  let assemblyFormat = [{
    $inputs (`offsets` `(` $offsets^ `:` type($offsets) `)`)?
    (`weights` `(` $weights^ `:` type($weights) `)`)?
    (`scales` `(` $scales^ `:` type($scales) `)`)?
    `:` type($inputs) `->` type($result) attr-dict-with-keyword $body
  }];
  let extraClassDeclaration = [{
    /// Returns whether the inputs use the grouped (dropless) layout.
    bool isGrouped() { return getInputs().getType().getRank() == 2; }
    /// Returns the type of the expert's rows in the body.
    ::mlir::RankedTensorType getExpertRowsType();
    /// Returns the yielded value of the body.
    ::mlir::Value getYieldedValue();
    /// Returns the layout of weight `index` when it is packed
    /// (`weight_layouts`), null when it is stored as the body reads it.
    ::mlir::moe::PackedWeightAttr getWeightLayout(unsigned index);
    /// Returns the scales operand of weight `index` when its layout is
    /// quantized, null otherwise.
    ::mlir::Value getWeightScales(unsigned index);
    /// Returns the number of experts E (dynamic when the offsets are).
    int64_t getNumExperts();
    /// Checks `weight_layouts` against the weights and the body arguments.
    ::mlir::LogicalResult verifyWeightLayouts();
  }];
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
}

def MoE_YieldOp : MoE_Op<"yield", [
    Pure, Terminator, ReturnLike, HasParent<"ExpertOp">]> {
  let summary = "yields the output rows of one expert";
  let description = [{
    Terminates the body of `moe.expert` with the expert's output rows.

    Example:

    ```mlir
    moe.yield %y : tensor<4x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$value);
  let assemblyFormat = "$value attr-dict `:` type($value)";
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

def MoE_CombineOp : MoE_Op<"combine", [
    Pure, AllTypesMatch<["init", "result"]>,
    DestinationStyleOpInterface]> {
  let summary = "accumulates the expert outputs into the tokens";
  let description = [{
    Adds the gate-weighted expert outputs to `init` (`[T, D]`) and returns
    the sum. Pass a zero tensor to get the layer output alone (tokens that
    no expert took then get zero), or the residual stream to fuse the
    residual add. Accumulation is in f32 at least.

    * `indices` and `weights` `[E, C]` with outputs `[E, C, D]` (capacity
      layout): `result[indices[e, c]] += weights[e, c] * outputs[e, c]` for
      every slot whose id is in `[0, T)`;
    * `indices` and `weights` `[N]` with outputs `[N, D]` (grouped layout):
      `result[indices[i]] += weights[i] * outputs[i]`;
    * `weights` `[T, E*S]` alone with outputs `[E, S, D]` (Soft MoE combine
      weights): `result += weights * outputs` with the outputs read as
      `[E*S, D]`.

    Example:

    ```mlir
    %y = moe.combine %ye indices(%ids : tensor<8x4xi32>)
        weights(%gates : tensor<8x4xf32>) into %zero
        : tensor<8x4x64xf32> -> tensor<16x64xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$expert_outputs,
                       Optional<MoE_IdTensor>:$indices,
                       TensorRankOf<MoE_FloatTypes, [1, 2]>:$weights,
                       MoE_Float2DTensor:$init);
  let results = (outs MoE_Float2DTensor:$result);
  let assemblyFormat = [{
    $expert_outputs (`indices` `(` $indices^ `:` type($indices) `)`)?
    `weights` `(` $weights `:` type($weights) `)` `into` $init attr-dict
    `:` type($expert_outputs) `->` type($result)
  }];
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return getInitMutable();
    }
  }];
  let hasVerifier = 1;
}

#endif // MOE_DIALECT_MOE_IR_MOEOPS_TD
