//===- MoEAttrs.td - MoE routing policies ------------------*- tablegen -*-===//
//
// This file defines the routing policy attributes of `moe.route` and the
// enums they use.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEATTRS_TD
#define MOE_DIALECT_MOE_IR_MOEATTRS_TD

include "moe/Dialect/MoE/IR/MoEBase.td"
include "moe/Dialect/MoE/IR/MoEInterfaces.td"
include "mlir/IR/EnumAttr.td"

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def MoE_ScoreFunction : I32EnumAttr<"ScoreFunction",
    "how router logits become per-expert probabilities", [
      I32EnumAttrCase<"Softmax", 0, "softmax">,
      I32EnumAttrCase<"Sigmoid", 1, "sigmoid">
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_CapacityOrder : I32EnumAttr<"CapacityOrder",
    "the order in which assignments fill an expert's slots", [
      I32EnumAttrCase<"Position", 0, "position">,
      I32EnumAttrCase<"Priority", 1, "priority">
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_RoutingLayout : I32EnumAttr<"RoutingLayout",
    "the layout of the routing results", [
      I32EnumAttrCase<"Capacity", 0, "capacity">,
      I32EnumAttrCase<"Grouped", 1, "grouped">,
      I32EnumAttrCase<"Soft", 2, "soft">
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

//===----------------------------------------------------------------------===//
// Parameters
//===----------------------------------------------------------------------===//

// A real-valued parameter (an f64 APFloat, which hashes and compares
// bitwise), printed in its shortest round-trip form.
class MoE_F64Parameter<string desc> : APFloatParameter<desc> {
  let parser = "::mlir::moe::detail::parseF64Parameter($_parser)";
  let printer = "::mlir::moe::detail::printF64Parameter($_printer, $_self)";
}

class MoE_DefaultF64Parameter<string value, string desc>
    : MoE_F64Parameter<desc> {
  let defaultValue = "::llvm::APFloat(" # value # ")";
}

def MoE_OptionalF64Parameter
    : AttrParameter<"std::optional<::llvm::APFloat>", "an optional real number"> {
  let parser = "::mlir::moe::detail::parseOptionalF64Parameter($_parser)";
  let printer = "::mlir::moe::detail::printF64Parameter($_printer, *$_self)";
  let defaultValue = "std::nullopt";
}

def MoE_BoolParameter : AttrParameter<"bool", "true or false"> {
  let parser = "::mlir::moe::detail::parseBoolParameter($_parser)";
  let printer = "$_printer << ($_self ? \"true\" : \"false\")";
  let defaultValue = "false";
}

class MoE_DefaultEnumParameter<EnumAttrInfo info, string value>
    : EnumParameter<info> {
  let defaultValue = value;
}

//===----------------------------------------------------------------------===//
// Routing policies
//===----------------------------------------------------------------------===//

class MoE_PolicyAttr<string name, string attrMnemonic>
    : MoE_Attr<name, attrMnemonic, [
        DeclareAttrInterfaceMethods<MoE_RoutingPolicyAttrInterface>]> {
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def MoE_TokenChoiceAttr : MoE_PolicyAttr<"TokenChoice", "token_choice"> {
  let summary = "every token picks its top-k experts";
  let description = [{
    Token-choice routing. With `P = score(scores)` over the experts of each
    token (`softmax` or `sigmoid`), every token takes the `top_k` experts
    with the largest selection score (ties go to the lower expert index).
    The gate of an assignment is `P[t, e]`, divided by the sum over the
    token's `k` chosen experts when `normalize = true`, times
    `routed_scaling_factor`.

    * Without `capacity_factor` the routing is *dropless* and uses the
      grouped layout: `T*k` token ids sorted by expert (by token within an
      expert), their gates, and `E+1` offsets.
    * With `capacity_factor` every expert has
      `C = ceil(capacity_factor * k * T / E)` slots (evaluated in f64, left
      to right) and the capacity layout `[E, C]`. `C` must fit int64 and be
      at least 1 -- for a dynamic `T` already at `T = 1` (`C` never
      decreases as `T` grows) -- so a factor so small that the product
      underflows to 0, or so large that `C` exceeds int64, is rejected. Assignments fill an
      expert's slots in `order`: `position` takes all first choices by token
      index, then all second choices, and so on; `priority` does the same
      but visits tokens by descending top-1 gate (batch-prioritized routing,
      ties by token index). Assignments past `C` are dropped; unused slots
      hold token id `-1` and gate `0`.

    Grouped (DeepSeek-V3) routing: `moe.route` takes a `bias` operand (one
    value per expert, added to the scores for *selection only*); the experts
    are split into `n_group` equal groups, a group scores the sum of its two
    largest biased scores, the `topk_group` best groups are kept (all when
    absent), and the `top_k` experts are chosen among them. Gates use the
    unbiased scores.

    `capacity_factor` and `routed_scaling_factor` are positive finite
    numbers, written as float literals (`1.25`, `5.0e-05`), integers (`2`)
    or, as everywhere in MLIR, hexadecimal bit patterns of an f64
    (`0x3FF4000000000000` is 1.25; `0x7FF0000000000000` is infinity and is
    rejected).

    Example:

    ```mlir
    #moe.token_choice<top_k = 2>
    #moe.token_choice<top_k = 2, capacity_factor = 1.25, order = priority>
    #moe.token_choice<top_k = 8, score = sigmoid, normalize = true,
                      n_group = 8, topk_group = 4, routed_scaling_factor = 2.5>
    ```
  }];
  let parameters = (ins
    "int64_t":$top_k,
    MoE_OptionalF64Parameter:$capacity_factor,
    MoE_DefaultEnumParameter<MoE_ScoreFunction,
                             "::mlir::moe::ScoreFunction::Softmax">:$score,
    MoE_BoolParameter:$normalize,
    MoE_DefaultEnumParameter<MoE_CapacityOrder,
                             "::mlir::moe::CapacityOrder::Position">:$order,
    DefaultValuedParameter<"int64_t", "1">:$n_group,
    OptionalParameter<"std::optional<int64_t>">:$topk_group,
    MoE_DefaultF64Parameter<"1.0", "scale applied to every gate">
      :$routed_scaling_factor
  );
  let builders = [
    AttrBuilder<(ins "int64_t":$topK,
                     CArg<"std::optional<double>", "std::nullopt">
                       :$capacityFactor), [{
      std::optional<::llvm::APFloat> factor;
      if (capacityFactor)
        factor = ::llvm::APFloat(*capacityFactor);
      return $_get($_ctxt, topK, factor, ScoreFunction::Softmax,
                   /*normalize=*/false, CapacityOrder::Position,
                   /*nGroup=*/1, /*topkGroup=*/std::nullopt,
                   /*routedScalingFactor=*/::llvm::APFloat(1.0));
    }]>
  ];
  let extraClassDeclaration = [{
    /// Returns the capacity factor as a double (none when dropless).
    std::optional<double> getCapacityFactorValue() const {
      if (std::optional<::llvm::APFloat> factor = getCapacityFactor())
        return factor->convertToDouble();
      return std::nullopt;
    }
    /// Returns the scale of every gate as a double.
    double getRoutedScalingFactorValue() const {
      return getRoutedScalingFactor().convertToDouble();
    }
    /// Returns whether no assignment is ever dropped (no capacity factor).
    bool isDropless() const { return !getCapacityFactor().has_value(); }
    /// Returns the number of groups kept by grouped routing.
    int64_t getEffectiveTopkGroup() const {
      return getTopkGroup().value_or(getNGroup());
    }
  }];
}

def MoE_ExpertChoiceAttr : MoE_PolicyAttr<"ExpertChoice", "expert_choice"> {
  let summary = "every expert picks its top-C tokens";
  let description = [{
    Expert-choice routing (Zhou et al., 2022). With `P = softmax(scores)`
    over the experts of each token, every expert takes the
    `C = ceil(capacity_factor * T / E)` tokens with the largest `P[:, e]`
    (ties go to the lower token index), with gates `P[t, e]`. As for token
    choice, `C` must fit int64 and be at least 1 (for a dynamic `T`: at
    `T = 1`). A token may be
    taken by 0 to `E` experts. The results use the capacity layout `[E, C]`;
    when `C > T` the slots past `T` are empty (token id `-1`, gate `0`).

    With `normalize = true` (not in the paper; what a token-choice layer's
    normalization becomes under `--moe-token-to-expert-choice`), each
    token's gates are divided by their sum over the experts that took it.

    Example:

    ```mlir
    #moe.expert_choice<capacity_factor = 2.0>
    #moe.expert_choice<capacity_factor = 2.0, normalize = true>
    ```
  }];
  let parameters = (ins MoE_F64Parameter<"average experts per token">
                          :$capacity_factor,
                        MoE_BoolParameter:$normalize);
  let builders = [
    AttrBuilder<(ins "double":$capacityFactor,
                     CArg<"bool", "false">:$normalize), [{
      return $_get($_ctxt, ::llvm::APFloat(capacityFactor), normalize);
    }]>
  ];
  let extraClassDeclaration = [{
    /// Returns the capacity factor as a double.
    double getCapacityFactorValue() const {
      return getCapacityFactor().convertToDouble();
    }
  }];
}

def MoE_SoftAttr : MoE_PolicyAttr<"Soft", "soft"> {
  let summary = "Soft MoE: every slot mixes all tokens";
  let description = [{
    Soft MoE routing (Puigcerver et al., 2023). The scores are the logits
    `L = X * Phi` of shape `[T, E*S]`. The dispatch weights are the softmax
    of `L` over tokens (per column), the combine weights the softmax over
    slots (per row); both are `[T, E*S]` results. Slot `j` belongs to expert
    `j / S`.

    Example:

    ```mlir
    #moe.soft<slots_per_expert = 4>
    ```
  }];
  let parameters = (ins "int64_t":$slots_per_expert);
}

//===----------------------------------------------------------------------===//
// Weight layouts
//===----------------------------------------------------------------------===//

def MoE_PackedWeightAttr : MoE_Attr<"PackedWeight", "packed"> {
  let summary = "an expert weight stored as column panels for the CPU tiles";
  let description = [{
    The layout of a `moe.expert` weight operand whose body argument is a
    matrix `[K, N]` (the right-hand side of `x * W`): the columns are cut
    into `ceil(N / panel)` panels of `panel` columns, and each panel is
    stored as its `K` rows of `panel` contiguous elements. The operand is
    `[E, ceil(N / panel), K, panel]` and holds

    ```
    packed[e, n / panel, k, n % panel] = W[e, k, n]
    ```

    with zeros in the columns past `N` of the last panel. With `storage`
    (only `bf16`, for an `f32` body argument) the elements are stored in
    that type: `packed[...] = truncf(W[...])`, rounded to nearest even
    (`moe-pack-expert-weights{storage=bf16}` rounds them), and the body's
    matmul reads each one widened back to `f32` (exact), accumulating in
    `f32`. A bf16 element is the upper 16 bits of an IEEE f32, little
    endian, 2 bytes: a panel row of `panel` elements is `2 * panel` bytes.

    With `storage = i8` (an `f32` body argument) the weight is quantized
    symmetrically, one scale per output column: the operand holds signed
    bytes `q` in `[-127, 127]`, and the expert's `scales` operand for this
    weight is `[E, ceil(N / panel), panel]` of `f32`, with

    ```
    W[e, k, n] = q[e, n / panel, k, n % panel] * s[e, n / panel, n % panel]
    ```

    (`moe-pack-expert-weights{storage=i8}` takes `s[n] = max_k |W[k, n]| /
    127` and `q = round_half_even(W / s)`; zero columns get `s = 0`). A
    panel row is `panel` bytes, and a panel's scales are `4 * panel` bytes
    of the scales operand, read once per panel. Because the scale is per output column it factors out of the sum over
    `K`: the tiles accumulate `x * q` in `f32` and multiply each column by
    its scale once.

    With `storage = i4, group = G` (an `f32` body argument, an even
    `panel`, `G` dividing `K`) the weight is quantized to 4-bit values in
    `[-8, 7]` with one scale per group of `G` rows (along `K`) and output
    column. The operand is `[E, ceil(N / panel), K, panel / 2]` of `i8`:
    byte `j` of a panel row holds column `j` in its low nibble and column
    `j + panel / 2` in its high nibble, each a two's complement 4-bit
    value (a GGUF `Q4_0` nibble `u` is `u - 8`: its byte XOR `0x88`). The
    scales operand is `[E, ceil(N / panel), K / G, panel]` of `f32`:

    ```
    v = nibble(q[e, n / panel, k, (n % panel) % (panel / 2)], (n % panel) / (panel / 2))
    W[e, k, n] = v * s[e, n / panel, k / G, n % panel]
    ```

    (`moe-pack-expert-weights{storage=i4 group=G}` takes `s = max |W| / 7`
    over the group's `G` weights of a column and `v = round_half_even(W /
    s)` clamped to `[-8, 7]`). A panel row is `panel / 2` bytes. The tiles
    unpack one group of a panel (`G x panel` bytes, in L1) at a time, sum
    `x * v` over the group in `f32` and add the sums times the group's
    scales.

    With `storage = i4, group = G, activations = i8` (`G` a multiple of 4)
    the tile contractions by the weight quantize their left-hand side too:
    each row's `G` values of a group become `a = round_half_even(x / t)`
    in `[-127, 127]` with `t = max |x| / 127` over them (NaN-blind; 0 for
    a zero group, whose values stay 0), and the contraction is
    `sum_g s[g, n] * (t[g] * float(sum_{k in g} a[k] * v[k, n]))`, the
    inner sum exact in 32-bit integers (`vpdpbusd` on AVX-512 VNNI hosts,
    `vpmaddubsw` + `vpmaddwd` on AVX-512BW and AVX2 ones). The values are
    GGUF's `Q8_0` x `Q4_0` dot product; a row's error is that of its int8
    quantization (`t / 2` per value at most). Rows `4i .. 4i + 3` of a
    panel are stored interleaved, as one run of `2 * panel` bytes: byte
    `4c + r` holds row `4i + r` of column `c` in its low nibble and of
    column `c + panel / 2` in its high nibble, each as `u = v + 8` in `[0,
    15]` (the `Q4_0` code). The operand and scales keep the shapes above.

    With `scales = f16` (for `storage = i8` or `i4`) the scales operand
    holds IEEE half floats, 2 little-endian bytes each, instead of `f32`:
    the same shapes, and every scale is read widened to `f32` (exact). A
    4-bit group of 32 with `activations = i8` is then GGUF's `Q4_0` block,
    18 bytes per 32 weights (0.5625 bytes per weight): an f16 scale `d`
    and 32 codes `u` with `W = (u - 8) * d`. `moe-pack-expert-weights`
    computes the codes with the `f32` scale and stores the scale rounded to
    nearest even f16 (as llama.cpp's `Q4_0` does); a scale above 65504
    (a group whose largest weight passes `7 x 65504` for `i4`, `127 x
    65504` for `i8`) becomes infinity, and one below 2^-24 zero.

    For f32, bf16 and i8 storage, the layout is
    `linalg.pack %w outer_dims_perm = [0, 2, 1] inner_dims_pos = [2]
    inner_tiles = [panel] padding_value(0)` of the `[E, K, N]` weight: the
    right-hand-side layout of `linalg.mmt4d` with a reduction tile of 1. A
    micro-kernel reads a panel front to back, one cache line after the
    other, whatever `N` is, instead of `K` rows `4 N` bytes apart (rows a
    multiple of 4 KiB apart fall into the same cache sets).

    `moe-pack-expert-weights` makes the layer entry point that takes packed
    weights and the function that packs them (once); the body of the expert
    is still written on the logical `[K, N]` matrix, so any body works.

    Example (panels of 64 columns of a `[1024, 2048]` weight):

    ```mlir
    moe.expert ... weights(%w : tensor<8x32x1024x64xf32>)
        ... attributes {weight_layouts = [#moe.packed<panel = 64>]} {
    ^bb0(%x: tensor<?x1024xf32>, %w_e: tensor<1024x2048xf32>):
    ```

    The same weight stored as bf16 (half the bytes a decode step reads):

    ```mlir
    moe.expert ... weights(%w : tensor<8x32x1024x64xbf16>)
        ... attributes {weight_layouts = [#moe.packed<panel = 64, storage = bf16>]} {
    ^bb0(%x: tensor<?x1024xf32>, %w_e: tensor<1024x2048xf32>):
    ```

    The same weight quantized to int8 (a quarter of the bytes), with its
    scales:

    ```mlir
    moe.expert ... weights(%q : tensor<8x32x1024x64xi8>)
        scales(%s : tensor<8x32x64xf32>) ...
        attributes {weight_layouts = [#moe.packed<panel = 64, storage = i8>]} {
    ^bb0(%x: tensor<?x1024xf32>, %w_e: tensor<1024x2048xf32>):
    ```
  }];
  let parameters = (ins "int64_t":$panel,
                        OptionalParameter<"::mlir::Type">:$storage,
                        DefaultValuedParameter<"int64_t", "0">:$group,
                        OptionalParameter<"::mlir::Type">:$activations,
                        OptionalParameter<"::mlir::Type">:$scales);
  let builders = [
    AttrBuilder<(ins "int64_t":$panel), [{
      return $_get($_ctxt, panel, ::mlir::Type(), 0, ::mlir::Type(),
                   ::mlir::Type());
    }]>,
    AttrBuilder<(ins "int64_t":$panel, "::mlir::Type":$storage), [{
      return $_get($_ctxt, panel, storage, 0, ::mlir::Type(), ::mlir::Type());
    }]>
  ];
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The packed slice of one expert ([ceil(N / panel), K, panel], of the
    /// storage type if any) for a logical [K, N] slice.
    ::mlir::RankedTensorType getPackedSliceType(::mlir::RankedTensorType logical) const;
    /// The scales of one expert ([ceil(N / panel), panel] of f32) when the
    /// storage is quantized, null otherwise.
    ::mlir::RankedTensorType getScaleSliceType(::mlir::RankedTensorType logical) const;
    /// The element type of the scales for a logical element type: `scales`
    /// if given (f16), else the logical type.
    ::mlir::Type getScaleType(::mlir::Type logical) const {
      return getScales() ? getScales() : logical;
    }
    /// Whether the panels hold integers that the scales multiply.
    bool isQuantized() const {
      return getStorage() && ::llvm::isa<::mlir::IntegerType>(getStorage());
    }
    /// Whether the panels hold 4-bit values, two per byte, with a scale per
    /// group of `group` rows.
    bool isNibbles() const {
      return getStorage() && getStorage().isSignlessInteger(4);
    }
    /// Whether the contractions by the weight quantize their left-hand
    /// side to int8 per row and group (4-bit weights stored for the integer
    /// dot product: rows interleaved by four, unsigned codes).
    bool hasInt8Activations() const { return static_cast<bool>(getActivations()); }
    /// The element type the panels' operand holds for a logical element
    /// type (i8 bytes for 4-bit values).
    ::mlir::Type getStorageType(::mlir::Type logical) const {
      if (isNibbles())
        return ::mlir::IntegerType::get(logical.getContext(), 8);
      return getStorage() ? getStorage() : logical;
    }
    /// The largest panel this attribute accepts.
    static constexpr int64_t kMaxPanel = 4096;
  }];
}

#endif // MOE_DIALECT_MOE_IR_MOEATTRS_TD
