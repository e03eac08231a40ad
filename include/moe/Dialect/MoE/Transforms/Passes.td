//===- Passes.td - moe dialect passes ----------------------*- tablegen -*-===//
//
// This file declares the passes that transform moe layers within the
// dialect (or into dense linalg where the model allows it).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
#define MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MoETokenToExpertChoice : Pass<"moe-token-to-expert-choice"> {
  let summary = "Rewrite token-choice routing into expert-choice routing";
  let description = [{
    Turns every `#moe.token_choice` layer into an `#moe.expert_choice` layer
    (Zhou et al., 2022): every expert then takes exactly `C` tokens -- a
    perfect load balance with no dropped-token bookkeeping -- and a token
    is processed by a variable number of experts. **This changes the model**:
    the converted layer computes expert-choice routing, not the original.

    The capacity keeps the expert compute equal by default:
    `capacity_factor_EC = top_k * capacity_factor_TC` (`top_k` when the
    token-choice layer was dropless), which gives exactly the same `C`
    per expert as the capacity routing had; `capacity-factor` overrides it.
    Dispatch, expert and combine are rewritten for the new layout and
    capacity (a dropless layer's grouped layout becomes the capacity layout;
    the expert body keeps its code, with a `tensor.cast` when its row count
    changes from dynamic to static).

    What expert choice cannot express is dropped, with a remark on the op:
    sigmoid scores (expert choice uses softmax), grouped routing and the
    score bias, `routed_scaling_factor`, and `normalize` unless
    `keep-normalize` is set (then each token's gates are divided by their
    sum over the experts that took it: `#moe.expert_choice<..., normalize =
    true>`). Layers that are not token choice are left untouched; a layer
    that cannot be converted (routing results used outside its
    dispatch/expert/combine, or an expert body written for a fixed number of
    rows that the new capacity changes) gets a remark saying why and stays
    as it was. A capacity factor whose `C` does not fit int64 or is 0 (for
    a dynamic `T`: at `T = 1`), or whose rebuilt tensors would have more
    elements or bytes than int64 counts, is an error on the route and the
    pass fails: it never leaves a `C` dynamic that was static.

    Example:

    ```mlir
    // Before
    %ids, %gates, %offsets = moe.route #moe.token_choice<top_k = 2> %logits
        : tensor<?x8xf32> -> tensor<?xi32>, tensor<?xf32>, tensor<9xi32>
    %xg = moe.dispatch %x indices(%ids : tensor<?xi32>) : tensor<?x64xf32> -> tensor<?x64xf32>
    %yg = moe.expert %xg offsets(%offsets : tensor<9xi32>) ... : tensor<?x64xf32> -> tensor<?x64xf32>
    %y = moe.combine %yg indices(%ids : tensor<?xi32>) weights(%gates : tensor<?xf32>) into %acc ...
    // After
    %ids, %gates = moe.route #moe.expert_choice<capacity_factor = 2.0> %logits
        : tensor<?x8xf32> -> tensor<8x?xi32>, tensor<8x?xf32>
    %xe = moe.dispatch %x indices(%ids : tensor<8x?xi32>) : tensor<?x64xf32> -> tensor<8x?x64xf32>
    %ye = moe.expert %xe ... : tensor<8x?x64xf32> -> tensor<8x?x64xf32>
    %y = moe.combine %ye indices(%ids : tensor<8x?xi32>) weights(%gates : tensor<8x?xf32>) into %acc ...
    ```
  }];
  let options = [
    Option<"capacityFactor", "capacity-factor", "double", /*default=*/"0.0",
           "Expert-choice capacity factor, finite and positive; 0 keeps the "
           "expert compute of the token-choice layer (top_k * its capacity "
           "factor, or top_k when dropless). The capacity C it gives must fit "
           "int64 and be at least 1, or the pass fails">,
    Option<"keepNormalize", "keep-normalize", "bool", /*default=*/"false",
           "Keep a token-choice `normalize = true` as per-token normalization "
           "of the expert-choice gates instead of dropping it">
  ];
  let dependentDialects = ["::mlir::tensor::TensorDialect"];
}

def MoERoutingStats : Pass<"moe-routing-stats"> {
  let summary = "Report capacity, expert FLOPs and buffer sizes of each layer";
  let description = [{
    Emits one remark per `moe.route` with what the routing costs: the
    policy, `T`, `E`, the capacity `C` per expert (or the assignments of a
    dropless layer), the rows the experts compute, the expert FLOPs (2 per
    multiply-add of the contractions in the expert body, times the rows),
    and the bytes of the dispatch and expert-output buffers. Run it before
    and after a rewrite to see what the rewrite buys:

    ```
    moe-opt layer.mlir -moe-routing-stats -moe-token-to-expert-choice \
        -moe-routing-stats -o /dev/null
    ```

    With a dynamic token count, `tokens=N` evaluates the sizes for `N`
    tokens; otherwise they are reported as dynamic.
  }];
  let options = [
    Option<"tokens", "tokens", "int64_t", /*default=*/"0",
           "Token count to evaluate layers with a dynamic T at, at least 0 "
           "(0: report them as dynamic); sizes past int64 are reported as "
           "overflowing, a capacity past int64 fails the pass">
  ];
}

def MoESoftToDense : Pass<"moe-soft-to-dense"> {
  let summary = "Rewrite Soft MoE layers into dense linalg matmuls and softmaxes";
  let description = [{
    Rewrites a Soft MoE layer (Puigcerver et al., 2023) -- a `moe.route`
    with `#moe.soft` and the dispatch, expert and combine that consume it --
    into dense linalg on tensors, with no gather, scatter, sort or top-k:

    * dispatch weights = softmax of the logits over tokens, combine
      weights = softmax over slots (both from the one logits tensor);
    * slots `X~ = D^T * X` as a `linalg.matmul` with a transposed operand;
    * the experts as batched ops over `[E, S, ...]`: each op of the expert
      body gains a leading expert dimension (`linalg.matmul` becomes
      `linalg.batch_matmul`, elementwise `linalg.generic`s gain a parallel
      loop, `linalg.fill`/`tensor.empty` a leading `E`);
    * `Y = init + Combine * Y~` as a `linalg.matmul` accumulating in f32.

    Semantics-preserving. A Soft MoE layer whose expert body holds an op
    that cannot be batched keeps its `moe.expert` (remark); layers of other
    policies are left untouched.

    Example:

    ```mlir
    // Before
    %d, %c = moe.route #moe.soft<slots_per_expert = 2> %logits : ...
    %xs = moe.dispatch %x weights(%d : tensor<?x8xf32>) : tensor<?x64xf32> -> tensor<4x2x64xf32>
    %ys = moe.expert %xs weights(%w : tensor<4x64x64xf32>) : ... { linalg.matmul ... }
    %y = moe.combine %ys weights(%c : tensor<?x8xf32>) into %acc : ...
    // After
    ... linalg.generic (softmaxes) ...
    %xs = linalg.matmul indexing_maps = [(m, n, k) -> (k, m), ...] ins(%d, %x ...)
    %ys = linalg.batch_matmul ins(%xs3, %w : tensor<4x2x64xf32>, tensor<4x64x64xf32>) ...
    %y = linalg.matmul ins(%c, %ys2 : tensor<?x8xf32>, tensor<8x64xf32>) outs(%acc ...)
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def MoEPackExpertWeights : Pass<"moe-pack-expert-weights", "::mlir::ModuleOp"> {
  let summary = "Add entry points that take expert weights packed in panels, "
                "and the functions that pack them";
  let description = [{
    For every public function `@f` whose arguments are `moe.expert` weights
    that the expert body multiplies by (`linalg.matmul` with the weight on
    the right, default maps, static `[K, N]` body argument), adds

    * `@f_pack_weights(w...) -> (p...)`: the packed copy of each such
      weight, in argument order, in the `#moe.packed<panel = P>` layout
      (`[E, ceil(N / P), K, P]`, zero-padded columns); it is
      `linalg.pack outer_dims_perm = [0, 2, 1] inner_dims_pos = [2]
      inner_tiles = [P]`, lowered here to pad, reshape and transpose;
    * `@f_packed`: `@f` taking those packed weights in their places, its
      `moe.expert` ops marked with `weight_layouts`.

    `@f` is unchanged, so callers that pass `[E, K, N]` weights keep
    working; with `storage=bf16` the f32 weights are packed as bf16
    (rounded to nearest even; a NaN becomes a quiet NaN), half the bytes,
    and the packed entry widens them back as it reads them; with
    `storage=i8` they are quantized to int8, one f32 scale per output
    column (`#moe.packed<storage = i8>`: a quarter of the bytes), and each
    quantized weight is followed by its scales `[E, ceil(N / P), P]` in
    `@f_pack_weights`' results and in `@f_packed`'s arguments; with
    `storage=i4` (and `group`) they are quantized to 4 bits, two per byte,
    with a scale per group of `group` rows and output column (an eighth of
    the bytes plus the scales), each followed by its scales
    `[E, ceil(N / P), K / group, P]`; `activations=i8` with `storage=i4`
    stores them for the integer dot product (see `#moe.packed`);
    `scales=f16` stores the scales of i8 or i4 weights as f16 (with
    `storage=i4 group=32 activations=i8`: GGUF's `Q4_0` block). A caller
    that calls one layer many times packs its weights
    once with `@f_pack_weights` and calls `@f_packed`. A weight used in any
    other way (or outside moe.expert) is not packed; a function with no
    weight to pack gets no new functions.

    Example:

    ```mlir
    // Before
    func.func @layer(%x: tensor<?x64xf32>, ..., %w: tensor<4x64x128xf32>) ...
    // After
    func.func @layer(...)                         // as before
    func.func @layer_pack_weights(%w: tensor<4x64x128xf32>) -> tensor<4x2x64x64xf32>
    func.func @layer_packed(%x: tensor<?x64xf32>, ..., %w: tensor<4x2x64x64xf32>) ...
        moe.expert ... weights(%w : tensor<4x2x64x64xf32>) ...
            attributes {weight_layouts = [#moe.packed<panel = 64>]}
    ```
  }];
  let options = [
    Option<"panel", "panel", "int64_t", /*default=*/"64",
           "Columns per panel, in [1, 4096] (moe-cpu-pipeline passes the "
           "micro-kernel's panel width for the target)">,
    Option<"storage", "storage", "std::string", /*default=*/"\"f32\"",
           "Element type of the packed f32 weights: f32 (as they are), "
           "bf16 (rounded to nearest even by the pack function; "
           "#moe.packed<storage = bf16>), i8 (symmetric, a scale per "
           "output column; #moe.packed<storage = i8>) or i4 (4-bit, two "
           "per byte, a scale per group of `group` rows and output column; "
           "#moe.packed<storage = i4, group = G>)">,
    Option<"group", "group", "int64_t", /*default=*/"32",
           "With storage=i4: rows along K per scale (32: GGUF Q4_0's "
           "blocks; 128: the AWQ/GPTQ g128 layout); must divide every "
           "packed weight's K">,
    Option<"activations", "activations", "std::string",
           /*default=*/"\"f32\"",
           "With storage=i4: f32 (the contractions read the rows as they "
           "are) or i8 (they quantize each row to int8 per group and sum "
           "products in integers, GGUF's Q8_0 x Q4_0; "
           "#moe.packed<..., activations = i8>, rows stored four by four; "
           "the group must be a multiple of 4)">,
    Option<"scales", "scales", "std::string", /*default=*/"\"f32\"",
           "With storage=i8 or i4: the scales' type, f32 or f16 (rounded "
           "to nearest even from the f32 scale the codes were computed "
           "with; #moe.packed<..., scales = f16>: with storage=i4 group=32 "
           "activations=i8, GGUF's Q4_0 block)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::func::FuncDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

#endif // MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
