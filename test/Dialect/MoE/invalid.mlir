// RUN: moe-opt %s -split-input-file -verify-diagnostics

// One case for every diagnostic the moe attributes and ops can emit.

//===----------------------------------------------------------------------===//
// Routing policy attributes
//===----------------------------------------------------------------------===//

func.func @top_k_zero(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{top_k must be at least 1, got 0}}
  %0:3 = moe.route #moe.token_choice<top_k = 0> %s : tensor<4x8xf32> -> tensor<0xi32>, tensor<0xf32>, tensor<9xi32>
  return
}

// -----

func.func @capacity_factor_zero(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{capacity_factor must be a positive finite number, got 0.0; omit it for dropless routing}}
  %0:2 = moe.route #moe.token_choice<top_k = 1, capacity_factor = 0.0> %s : tensor<4x8xf32> -> tensor<8x0xi32>, tensor<8x0xf32>
  return
}

// -----

func.func @capacity_factor_negative(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{capacity_factor must be a positive finite number, got -1.5; omit it for dropless routing}}
  %0:2 = moe.route #moe.token_choice<top_k = 1, capacity_factor = -1.5> %s : tensor<4x8xf32> -> tensor<8x1xi32>, tensor<8x1xf32>
  return
}

// -----

// A hexadecimal literal is the bit pattern of an f64 (here +inf), not the
// integer 9218868437227405312: it used to pass as a huge finite factor.
func.func @capacity_factor_hex_inf(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{capacity_factor must be a positive finite number, got inf; omit it for dropless routing}}
  %0:2 = moe.route #moe.token_choice<top_k = 1, capacity_factor = 0x7FF0000000000000> %s : tensor<4x8xf32> -> tensor<8x1xi32>, tensor<8x1xf32>
  return
}

// -----

func.func @capacity_factor_hex_nan(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{capacity_factor must be a positive finite number, got nan}}
  %0:2 = moe.route #moe.expert_choice<capacity_factor = 0x7FF8000000000000> %s : tensor<4x8xf32> -> tensor<8x1xi32>, tensor<8x1xf32>
  return
}

// -----

func.func @routed_scaling_factor_hex_inf(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{routed_scaling_factor must be a positive finite number, got inf}}
  %0:3 = moe.route #moe.token_choice<top_k = 1, routed_scaling_factor = 0x7FF0000000000000> %s : tensor<4x8xf32> -> tensor<4xi32>, tensor<4xf32>, tensor<9xi32>
  return
}

// -----

func.func @capacity_factor_hex_minus(%s: tensor<4x8xf32>) {
  // expected-error @+2 {{a hexadecimal float literal gives the bits of an f64 and takes no leading minus}}
  // expected-error @+1 {{failed to parse MoE_TokenChoiceAttr parameter 'capacity_factor'}}
  %0:2 = moe.route #moe.token_choice<top_k = 1, capacity_factor = -0x3FF0000000000000> %s : tensor<4x8xf32> -> tensor<8x1xi32>, tensor<8x1xf32>
  return
}

// -----

func.func @capacity_factor_hex_too_wide(%s: tensor<4x8xf32>) {
  // expected-error @+2 {{hexadecimal float literal 0x17FF0000000000000 has more than the 64 bits of an f64}}
  // expected-error @+1 {{failed to parse MoE_ExpertChoiceAttr parameter 'capacity_factor'}}
  %0:2 = moe.route #moe.expert_choice<capacity_factor = 0x17FF0000000000000> %s : tensor<4x8xf32> -> tensor<8x1xi32>, tensor<8x1xf32>
  return
}

// -----

func.func @priority_without_capacity(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{order = priority needs a capacity_factor: dropless routing drops nothing, so the fill order has no effect}}
  %0:3 = moe.route #moe.token_choice<top_k = 1, order = priority> %s : tensor<4x8xf32> -> tensor<4xi32>, tensor<4xf32>, tensor<9xi32>
  return
}

// -----

func.func @n_group_zero(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{n_group must be at least 1, got 0}}
  %0:3 = moe.route #moe.token_choice<top_k = 1, n_group = 0> %s : tensor<4x8xf32> -> tensor<4xi32>, tensor<4xf32>, tensor<9xi32>
  return
}

// -----

func.func @topk_group_too_large(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{topk_group must be in [1, n_group = 2], got 3}}
  %0:3 = moe.route #moe.token_choice<top_k = 1, n_group = 2, topk_group = 3> %s : tensor<4x8xf32> -> tensor<4xi32>, tensor<4xf32>, tensor<9xi32>
  return
}

// -----

func.func @topk_group_zero(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{topk_group must be in [1, n_group = 2], got 0}}
  %0:3 = moe.route #moe.token_choice<top_k = 1, n_group = 2, topk_group = 0> %s : tensor<4x8xf32> -> tensor<4xi32>, tensor<4xf32>, tensor<9xi32>
  return
}

// -----

func.func @routed_scaling_factor_zero(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{routed_scaling_factor must be a positive finite number, got 0.0}}
  %0:3 = moe.route #moe.token_choice<top_k = 1, routed_scaling_factor = 0.0> %s : tensor<4x8xf32> -> tensor<4xi32>, tensor<4xf32>, tensor<9xi32>
  return
}

// -----

func.func @expert_choice_capacity_factor(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{capacity_factor must be a positive finite number, got -1.0}}
  %0:2 = moe.route #moe.expert_choice<capacity_factor = -1.0> %s : tensor<4x8xf32> -> tensor<8x1xi32>, tensor<8x1xf32>
  return
}

// -----

func.func @soft_no_slots(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{slots_per_expert must be at least 1, got 0}}
  %0:2 = moe.route #moe.soft<slots_per_expert = 0> %s : tensor<4x8xf32> -> tensor<4x8xf32>, tensor<4x8xf32>
  return
}

// -----

func.func @bad_bool(%s: tensor<4x8xf32>) {
  // expected-error @+2 {{expected 'true' or 'false'}}
  // expected-error @+1 {{failed to parse MoE_TokenChoiceAttr parameter 'normalize'}}
  %0:3 = moe.route #moe.token_choice<top_k = 1, normalize = yes> %s : tensor<4x8xf32> -> tensor<4xi32>, tensor<4xf32>, tensor<9xi32>
  return
}

// -----

func.func @bad_enum(%s: tensor<4x8xf32>) {
  // expected-error @+2 {{expected ::mlir::moe::ScoreFunction to be one of: softmax, sigmoid}}
  // expected-error @+1 {{failed to parse MoE_TokenChoiceAttr parameter 'score'}}
  %0:3 = moe.route #moe.token_choice<top_k = 1, score = relu> %s : tensor<4x8xf32> -> tensor<4xi32>, tensor<4xf32>, tensor<9xi32>
  return
}

// -----

func.func @unknown_parameter(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{duplicate or unknown struct parameter name: capacity}}
  %0:3 = moe.route #moe.token_choice<top_k = 1, capacity = 2.0> %s : tensor<4x8xf32> -> tensor<4xi32>, tensor<4xf32>, tensor<9xi32>
  return
}

// -----

func.func @missing_top_k(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{struct is missing required parameter: top_k}}
  %0:3 = moe.route #moe.token_choice<normalize = true> %s : tensor<4x8xf32> -> tensor<4xi32>, tensor<4xf32>, tensor<9xi32>
  return
}

// -----

func.func @unknown_policy(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{unknown attribute `hash_choice` in dialect `moe`}}
  %0:3 = moe.route #moe.hash_choice<top_k = 1> %s : tensor<4x8xf32> -> tensor<4xi32>, tensor<4xf32>, tensor<9xi32>
  return
}

// -----

func.func @policy_not_a_policy(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{invalid properties {policy = 2 : i64} for op moe.route: Invalid attribute `policy` in property conversion: 2 : i64}}
  %0:2 = "moe.route"(%s) <{policy = 2 : i64}> : (tensor<4x8xf32>) -> (tensor<8x1xi32>, tensor<8x1xf32>)
  return
}

//===----------------------------------------------------------------------===//
// moe.route
//===----------------------------------------------------------------------===//

// -----

func.func @scores_not_float(%s: tensor<4x8xi32>) {
  // expected-error @+1 {{operand #0 must be 2D tensor of 32-bit float or 16-bit float or bfloat16 type values}}
  %0:3 = moe.route #moe.token_choice<top_k = 1> %s : tensor<4x8xi32> -> tensor<4xi32>, tensor<4xf32>, tensor<9xi32>
  return
}

// -----

func.func @scores_rank_3(%s: tensor<2x4x8xf32>) {
  // expected-error @+1 {{operand #0 must be 2D tensor of 32-bit float or 16-bit float or bfloat16 type values}}
  %0:3 = moe.route #moe.token_choice<top_k = 1> %s : tensor<2x4x8xf32> -> tensor<4xi32>, tensor<4xf32>, tensor<9xi32>
  return
}

// -----

func.func @dynamic_experts(%s: tensor<4x?xf32>) {
  // expected-error @+1 {{'moe.route' op needs a static number of score columns (experts), got scores 'tensor<4x?xf32>'}}
  %0:3 = moe.route #moe.token_choice<top_k = 1> %s : tensor<4x?xf32> -> tensor<4xi32>, tensor<4xf32>, tensor<9xi32>
  return
}

// -----

func.func @no_experts(%s: tensor<4x0xf32>) {
  // expected-error @+1 {{'moe.route' op needs at least one expert, got scores 'tensor<4x0xf32>'}}
  %0:2 = moe.route #moe.expert_choice<capacity_factor = 1.0> %s : tensor<4x0xf32> -> tensor<0x1xi32>, tensor<0x1xf32>
  return
}

// -----

func.func @top_k_exceeds_experts(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op top_k = 9 exceeds the number of experts E = 8}}
  %0:3 = moe.route #moe.token_choice<top_k = 9> %s : tensor<4x8xf32> -> tensor<36xi32>, tensor<36xf32>, tensor<9xi32>
  return
}

// -----

func.func @n_group_does_not_divide(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op n_group = 3 does not divide the number of experts E = 8}}
  %0:3 = moe.route #moe.token_choice<top_k = 1, n_group = 3> %s : tensor<4x8xf32> -> tensor<4xi32>, tensor<4xf32>, tensor<9xi32>
  return
}

// -----

func.func @groups_of_one(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op grouped routing scores a group by its two largest experts, but n_group = 8 leaves 1 expert per group (E = 8)}}
  %0:3 = moe.route #moe.token_choice<top_k = 1, n_group = 8> %s : tensor<4x8xf32> -> tensor<4xi32>, tensor<4xf32>, tensor<9xi32>
  return
}

// -----

func.func @top_k_exceeds_kept_groups(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op top_k = 3 exceeds the 2 experts of the topk_group = 1 kept groups}}
  %0:3 = moe.route #moe.token_choice<top_k = 3, n_group = 4, topk_group = 1> %s : tensor<4x8xf32> -> tensor<12xi32>, tensor<12xf32>, tensor<9xi32>
  return
}

// -----

func.func @soft_columns_not_multiple(%s: tensor<4x9xf32>) {
  // expected-error @+1 {{'moe.route' op Soft MoE scores have 9 columns, which is not a multiple of slots_per_expert = 2}}
  %0:2 = moe.route #moe.soft<slots_per_expert = 2> %s : tensor<4x9xf32> -> tensor<4x9xf32>, tensor<4x9xf32>
  return
}

// -----

func.func @bias_with_expert_choice(%s: tensor<4x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'moe.route' op takes a score bias only with #moe.token_choice routing, got policy #moe.expert_choice<capacity_factor = 1.0>}}
  %0:2 = moe.route #moe.expert_choice<capacity_factor = 1.0> %s bias(%b : tensor<8xf32>) : tensor<4x8xf32> -> tensor<8x1xi32>, tensor<8x1xf32>
  return
}

// -----

func.func @bias_wrong_size(%s: tensor<4x8xf32>, %b: tensor<7xf32>) {
  // expected-error @+1 {{'moe.route' op bias must hold one value per expert (E = 8), got 'tensor<7xf32>'}}
  %0:3 = moe.route #moe.token_choice<top_k = 1> %s bias(%b : tensor<7xf32>) : tensor<4x8xf32> -> tensor<4xi32>, tensor<4xf32>, tensor<9xi32>
  return
}

// -----

func.func @bias_wrong_type(%s: tensor<4x8xf32>, %b: tensor<8xf16>) {
  // expected-error @+1 {{'moe.route' op bias element type 'f16' must match the scores' element type 'f32'}}
  %0:3 = moe.route #moe.token_choice<top_k = 1> %s bias(%b : tensor<8xf16>) : tensor<4x8xf32> -> tensor<4xi32>, tensor<4xf32>, tensor<9xi32>
  return
}

// -----

func.func @wrong_result_count(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op with grouped-layout policy #moe.token_choice<top_k = 1> has 3 results (token ids, gates, offsets), got 2}}
  %0:2 = moe.route #moe.token_choice<top_k = 1> %s : tensor<4x8xf32> -> tensor<4xi32>, tensor<4xf32>
  return
}

// -----

func.func @token_ids_not_integer(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op token ids must be a tensor of i32 or i64, got 'tensor<8x1xf32>'}}
  %0:2 = moe.route #moe.token_choice<top_k = 1, capacity_factor = 2.0> %s : tensor<4x8xf32> -> tensor<8x1xf32>, tensor<8x1xf32>
  return
}

// -----

func.func @token_ids_i16(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op token ids must be a tensor of i32 or i64, got 'tensor<8x1xi16>'}}
  %0:2 = moe.route #moe.token_choice<top_k = 1, capacity_factor = 2.0> %s : tensor<4x8xf32> -> tensor<8x1xi16>, tensor<8x1xf32>
  return
}

// -----

func.func @wrong_capacity(%s: tensor<10x8xf32>) {
  // expected-error @+2 {{'moe.route' op result #0 (token ids) must be 'tensor<8x4xi32>', got 'tensor<8x3xi32>'}}
  // expected-note @+1 {{C = ceil(capacity_factor * k * T / E) = ceil(1.25 * 2 * 10 / 8) = 4}}
  %0:2 = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.25> %s : tensor<10x8xf32> -> tensor<8x3xi32>, tensor<8x3xf32>
  return
}

// -----

func.func @wrong_expert_choice_capacity(%s: tensor<10x8xf32>) {
  // expected-error @+2 {{'moe.route' op result #0 (token ids) must be 'tensor<8x3xi32>', got 'tensor<8x2xi32>'}}
  // expected-note @+1 {{C = ceil(capacity_factor * k * T / E) = ceil(2.0 * 1 * 10 / 8) = 3}}
  %0:2 = moe.route #moe.expert_choice<capacity_factor = 2.0> %s : tensor<10x8xf32> -> tensor<8x2xi32>, tensor<8x2xf32>
  return
}

// -----

func.func @static_capacity_dynamic_tokens(%s: tensor<?x8xf32>) {
  // expected-error @+2 {{'moe.route' op result #0 (token ids) must be 'tensor<8x?xi32>', got 'tensor<8x4xi32>'}}
  // expected-note @+1 {{the capacity C depends on the token count T, so it is '?' when T is}}
  %0:2 = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.0> %s : tensor<?x8xf32> -> tensor<8x4xi32>, tensor<8x4xf32>
  return
}

// -----

func.func @wrong_expert_count(%s: tensor<10x8xf32>) {
  // expected-error @+2 {{'moe.route' op result #0 (token ids) must be 'tensor<8x3xi32>', got 'tensor<4x3xi32>'}}
  // expected-note @+1 {{C = ceil}}
  %0:2 = moe.route #moe.expert_choice<capacity_factor = 2.0> %s : tensor<10x8xf32> -> tensor<4x3xi32>, tensor<4x3xf32>
  return
}

// -----

func.func @gates_wrong_type(%s: tensor<10x8xf32>) {
  // expected-error @+2 {{'moe.route' op result #1 (gates) must be 'tensor<8x3xf32>', got 'tensor<8x3xf16>'}}
  // expected-note @+1 {{C = ceil}}
  %0:2 = moe.route #moe.expert_choice<capacity_factor = 2.0> %s : tensor<10x8xf32> -> tensor<8x3xi32>, tensor<8x3xf16>
  return
}

// -----

func.func @wrong_assignment_count(%s: tensor<10x8xf32>) {
  // expected-error @+1 {{'moe.route' op result #0 (token ids) must be 'tensor<20xi32>', got 'tensor<10xi32>'}}
  %0:3 = moe.route #moe.token_choice<top_k = 2> %s : tensor<10x8xf32> -> tensor<10xi32>, tensor<10xf32>, tensor<9xi32>
  return
}

// -----

func.func @wrong_offsets(%s: tensor<10x8xf32>) {
  // expected-error @+1 {{'moe.route' op result #2 (offsets) must be 'tensor<9xi32>', got 'tensor<8xi32>'}}
  %0:3 = moe.route #moe.token_choice<top_k = 2> %s : tensor<10x8xf32> -> tensor<20xi32>, tensor<20xf32>, tensor<8xi32>
  return
}

// -----

func.func @offsets_type_differs_from_ids(%s: tensor<10x8xf32>) {
  // expected-error @+1 {{'moe.route' op result #2 (offsets) must be 'tensor<9xi32>', got 'tensor<9xi64>'}}
  %0:3 = moe.route #moe.token_choice<top_k = 2> %s : tensor<10x8xf32> -> tensor<20xi32>, tensor<20xf32>, tensor<9xi64>
  return
}

// -----

func.func @soft_wrong_results(%s: tensor<10x8xf32>) {
  // expected-error @+1 {{'moe.route' op result #1 (combine weights) must be 'tensor<10x8xf32>', got 'tensor<8x10xf32>'}}
  %0:2 = moe.route #moe.soft<slots_per_expert = 2> %s : tensor<10x8xf32> -> tensor<10x8xf32>, tensor<8x10xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.dispatch
//===----------------------------------------------------------------------===//

// -----

func.func @dispatch_both(%x: tensor<10x16xf32>, %ids: tensor<8x3xi32>, %w: tensor<10x8xf32>) {
  // expected-error @+1 {{'moe.dispatch' op needs exactly one of 'indices' (sparse routing) or 'weights' (Soft MoE), got both}}
  %0 = moe.dispatch %x indices(%ids : tensor<8x3xi32>) weights(%w : tensor<10x8xf32>) : tensor<10x16xf32> -> tensor<8x3x16xf32>
  return
}

// -----

func.func @dispatch_neither(%x: tensor<10x16xf32>) {
  // expected-error @+1 {{'moe.dispatch' op needs exactly one of 'indices' (sparse routing) or 'weights' (Soft MoE), got neither}}
  %0 = moe.dispatch %x : tensor<10x16xf32> -> tensor<8x3x16xf32>
  return
}

// -----

func.func @dispatch_element_type(%x: tensor<10x16xf32>, %ids: tensor<8x3xi32>) {
  // expected-error @+1 {{'moe.dispatch' op result element type 'bf16' must match the tokens' element type 'f32'}}
  %0 = moe.dispatch %x indices(%ids : tensor<8x3xi32>) : tensor<10x16xf32> -> tensor<8x3x16xbf16>
  return
}

// -----

func.func @dispatch_tokens_not_float(%x: tensor<10x16xi8>, %ids: tensor<8x3xi32>) {
  // expected-error @+1 {{operand #0 must be 2D tensor of 32-bit float or 16-bit float or bfloat16 type values, but got 'tensor<10x16xi8>'}}
  %0 = moe.dispatch %x indices(%ids : tensor<8x3xi32>) : tensor<10x16xi8> -> tensor<8x3x16xi8>
  return
}

// -----

func.func @dispatch_indices_float(%x: tensor<10x16xf32>, %ids: tensor<8x3xf32>) {
  // expected-error @+1 {{operand #1 must be 1D/2D tensor of 32-bit signless integer or 64-bit signless integer values, but got 'tensor<8x3xf32>'}}
  %0 = moe.dispatch %x indices(%ids : tensor<8x3xf32>) : tensor<10x16xf32> -> tensor<8x3x16xf32>
  return
}

// -----

func.func @dispatch_capacity_shape(%x: tensor<10x16xf32>, %ids: tensor<8x3xi32>) {
  // expected-error @+1 {{'moe.dispatch' op result must be [8, 3, 16] (the indices' [8, 3] rows of D = 16), got 'tensor<8x4x16xf32>'}}
  %0 = moe.dispatch %x indices(%ids : tensor<8x3xi32>) : tensor<10x16xf32> -> tensor<8x4x16xf32>
  return
}

// -----

func.func @dispatch_capacity_model_dim(%x: tensor<10x16xf32>, %ids: tensor<8x?xi32>) {
  // expected-error @+1 {{'moe.dispatch' op result must be [8, ?, 16] (the indices' [8, ?] rows of D = 16), got 'tensor<8x?x32xf32>'}}
  %0 = moe.dispatch %x indices(%ids : tensor<8x?xi32>) : tensor<10x16xf32> -> tensor<8x?x32xf32>
  return
}

// -----

func.func @dispatch_grouped_shape(%x: tensor<10x16xf32>, %ids: tensor<20xi32>) {
  // expected-error @+1 {{'moe.dispatch' op result must be [20, 16] (the indices' [20] rows of D = 16), got 'tensor<8x3x16xf32>'}}
  %0 = moe.dispatch %x indices(%ids : tensor<20xi32>) : tensor<10x16xf32> -> tensor<8x3x16xf32>
  return
}

// -----

func.func @dispatch_soft_rows(%x: tensor<10x16xf32>, %d: tensor<12x8xf32>) {
  // expected-error @+1 {{'moe.dispatch' op Soft MoE dispatch weights have 12 rows, expected one per token (T = 10)}}
  %0 = moe.dispatch %x weights(%d : tensor<12x8xf32>) : tensor<10x16xf32> -> tensor<4x2x16xf32>
  return
}

// -----

func.func @dispatch_soft_rank(%x: tensor<10x16xf32>, %d: tensor<10x8xf32>) {
  // expected-error @+1 {{'moe.dispatch' op Soft MoE result must be [E, S, D], got 'tensor<8x16xf32>'}}
  %0 = moe.dispatch %x weights(%d : tensor<10x8xf32>) : tensor<10x16xf32> -> tensor<8x16xf32>
  return
}

// -----

func.func @dispatch_soft_dynamic_slots(%x: tensor<10x16xf32>, %d: tensor<10x8xf32>) {
  // expected-error @+1 {{'moe.dispatch' op Soft MoE slots [E, S] must be static, got 'tensor<4x?x16xf32>'}}
  %0 = moe.dispatch %x weights(%d : tensor<10x8xf32>) : tensor<10x16xf32> -> tensor<4x?x16xf32>
  return
}

// -----

func.func @dispatch_soft_slot_count(%x: tensor<10x16xf32>, %d: tensor<10x8xf32>) {
  // expected-error @+1 {{'moe.dispatch' op has E * S = 4 * 3 = 12 slots in the result, but the dispatch weights have 8 columns}}
  %0 = moe.dispatch %x weights(%d : tensor<10x8xf32>) : tensor<10x16xf32> -> tensor<4x3x16xf32>
  return
}

// -----

func.func @dispatch_soft_model_dim(%x: tensor<10x16xf32>, %d: tensor<10x8xf32>) {
  // expected-error @+1 {{'moe.dispatch' op feature size 32 of the result must match the tokens' D = 16}}
  %0 = moe.dispatch %x weights(%d : tensor<10x8xf32>) : tensor<10x16xf32> -> tensor<4x2x32xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.expert
//===----------------------------------------------------------------------===//

// -----

func.func @expert_inputs_rank(%xe: tensor<2x4x3x8xf32>) {
  // expected-error @+1 {{'moe.expert' op inputs must be [E, R, D] (capacity or soft layout) or [N, D] with offsets (grouped layout), got 'tensor<2x4x3x8xf32>'}}
  %0 = moe.expert %xe : tensor<2x4x3x8xf32> -> tensor<2x4x3x8xf32> {
  ^bb0(%r: tensor<4x3x8xf32>):
    moe.yield %r : tensor<4x3x8xf32>
  }
  return
}

// -----

func.func @expert_grouped_without_offsets(%xg: tensor<20x8xf32>) {
  // expected-error @+1 {{'moe.expert' op inputs 'tensor<20x8xf32>' use the grouped layout and need 'offsets' ([E+1])}}
  %0 = moe.expert %xg : tensor<20x8xf32> -> tensor<20x8xf32> {
  ^bb0(%r: tensor<?x8xf32>):
    moe.yield %r : tensor<?x8xf32>
  }
  return
}

// -----

func.func @expert_offsets_with_capacity(%xe: tensor<4x3x8xf32>, %off: tensor<5xi32>) {
  // expected-error @+1 {{'moe.expert' op 'offsets' are only for grouped inputs [N, D], got inputs 'tensor<4x3x8xf32>'}}
  %0 = moe.expert %xe offsets(%off : tensor<5xi32>) : tensor<4x3x8xf32> -> tensor<4x3x8xf32> {
  ^bb0(%r: tensor<3x8xf32>):
    moe.yield %r : tensor<3x8xf32>
  }
  return
}

// -----

func.func @expert_dynamic_experts(%xg: tensor<20x8xf32>, %off: tensor<?xi32>) {
  // expected-error @+1 {{'moe.expert' op needs a static number of experts, got inputs 'tensor<20x8xf32>'}}
  %0 = moe.expert %xg offsets(%off : tensor<?xi32>) : tensor<20x8xf32> -> tensor<20x8xf32> {
  ^bb0(%r: tensor<?x8xf32>):
    moe.yield %r : tensor<?x8xf32>
  }
  return
}

// -----

func.func @expert_scalar_weight(%xe: tensor<4x3x8xf32>, %w: tensor<f32>) {
  // expected-error @+1 {{'moe.expert' op weight #0 must have a leading expert dimension, got 'tensor<f32>'}}
  %0 = moe.expert %xe weights(%w : tensor<f32>) : tensor<4x3x8xf32> -> tensor<4x3x8xf32> {
  ^bb0(%r: tensor<3x8xf32>, %s: tensor<f32>):
    moe.yield %r : tensor<3x8xf32>
  }
  return
}

// -----

func.func @expert_weight_leading_dim(%xe: tensor<4x3x8xf32>, %w1: tensor<4x8x8xf32>, %w2: tensor<5x8x8xf32>) {
  // expected-error @+1 {{'moe.expert' op weight #1 has leading dimension 5, expected the number of experts E = 4}}
  %0 = moe.expert %xe weights(%w1, %w2 : tensor<4x8x8xf32>, tensor<5x8x8xf32>) : tensor<4x3x8xf32> -> tensor<4x3x8xf32> {
  ^bb0(%r: tensor<3x8xf32>, %a: tensor<8x8xf32>, %b: tensor<8x8xf32>):
    moe.yield %r : tensor<3x8xf32>
  }
  return
}

// -----

func.func @expert_grouped_weight_leading_dim(%xg: tensor<20x8xf32>, %off: tensor<5xi64>, %w: tensor<8x8x8xf32>) {
  // expected-error @+1 {{'moe.expert' op weight #0 has leading dimension 8, expected the number of experts E = 4}}
  %0 = moe.expert %xg offsets(%off : tensor<5xi64>) weights(%w : tensor<8x8x8xf32>) : tensor<20x8xf32> -> tensor<20x8xf32> {
  ^bb0(%r: tensor<?x8xf32>, %a: tensor<8x8xf32>):
    moe.yield %r : tensor<?x8xf32>
  }
  return
}

// -----

func.func @expert_result_rows(%xe: tensor<4x3x8xf32>) {
  // expected-error @+1 {{'moe.expert' op result must keep the inputs' rows [4, 3], got 'tensor<4x5x8xf32>'}}
  %0 = moe.expert %xe : tensor<4x3x8xf32> -> tensor<4x5x8xf32> {
  ^bb0(%r: tensor<3x8xf32>):
    moe.yield %r : tensor<3x8xf32>
  }
  return
}

// -----

func.func @expert_body_arg_count(%xe: tensor<4x3x8xf32>, %w: tensor<4x8x8xf32>) {
  // expected-error @+1 {{'moe.expert' op body must take 2 arguments (the expert's rows and one slice per weight), got 1}}
  %0 = moe.expert %xe weights(%w : tensor<4x8x8xf32>) : tensor<4x3x8xf32> -> tensor<4x3x8xf32> {
  ^bb0(%r: tensor<3x8xf32>):
    moe.yield %r : tensor<3x8xf32>
  }
  return
}

// -----

func.func @expert_body_rows_type(%xe: tensor<4x3x8xf32>) {
  // expected-error @+1 {{'moe.expert' op body argument #0 must be the expert's rows 'tensor<3x8xf32>', got 'tensor<4x3x8xf32>'}}
  %0 = moe.expert %xe : tensor<4x3x8xf32> -> tensor<4x3x8xf32> {
  ^bb0(%r: tensor<4x3x8xf32>):
    %c = arith.constant dense<0.0> : tensor<3x8xf32>
    moe.yield %c : tensor<3x8xf32>
  }
  return
}

// -----

func.func @expert_body_grouped_rows_static(%xg: tensor<20x8xf32>, %off: tensor<5xi32>) {
  // expected-error @+1 {{'moe.expert' op body argument #0 must be the expert's rows 'tensor<?x8xf32>', got 'tensor<5x8xf32>'}}
  %0 = moe.expert %xg offsets(%off : tensor<5xi32>) : tensor<20x8xf32> -> tensor<20x8xf32> {
  ^bb0(%r: tensor<5x8xf32>):
    moe.yield %r : tensor<5x8xf32>
  }
  return
}

// -----

func.func @expert_body_weight_type(%xe: tensor<4x3x8xf32>, %w: tensor<4x8x16xf32>) {
  // expected-error @+1 {{'moe.expert' op body argument #1 must be weight #0 without its expert dimension, 'tensor<8x16xf32>', got 'tensor<4x8x16xf32>'}}
  %0 = moe.expert %xe weights(%w : tensor<4x8x16xf32>) : tensor<4x3x8xf32> -> tensor<4x3x8xf32> {
  ^bb0(%r: tensor<3x8xf32>, %a: tensor<4x8x16xf32>):
    moe.yield %r : tensor<3x8xf32>
  }
  return
}

// -----

func.func @expert_yield_type(%xe: tensor<4x3x8xf32>) {
  // expected-error @+1 {{'moe.expert' op body must yield the expert's output rows 'tensor<3x16xf32>' (its 3 rows of the result's 16 features), got 'tensor<3x8xf32>'}}
  %0 = moe.expert %xe : tensor<4x3x8xf32> -> tensor<4x3x16xf32> {
  ^bb0(%r: tensor<3x8xf32>):
    moe.yield %r : tensor<3x8xf32>
  }
  return
}

// -----

func.func @expert_yield_element_type(%xe: tensor<4x3x8xf32>) {
  // expected-error @+1 {{'moe.expert' op body must yield the expert's output rows 'tensor<3x8xf16>' (its 3 rows of the result's 8 features), got 'tensor<3x8xf32>'}}
  %0 = moe.expert %xe : tensor<4x3x8xf32> -> tensor<4x3x8xf16> {
  ^bb0(%r: tensor<3x8xf32>):
    moe.yield %r : tensor<3x8xf32>
  }
  return
}

// -----

func.func @expert_wrong_terminator(%xe: tensor<4x3x8xf32>) {
  %0 = moe.expert %xe : tensor<4x3x8xf32> -> tensor<4x3x8xf32> {
  ^bb0(%r: tensor<3x8xf32>):
    // expected-error @+1 {{'func.return' op expects parent op 'func.func'}}
    func.return %r : tensor<3x8xf32>
  }
  return
}

// -----

func.func @expert_uses_value_from_above(%xe: tensor<4x3x8xf32>, %c: tensor<3x8xf32>) {
  // expected-note @+1 {{required by region isolation constraints}}
  %0 = moe.expert %xe : tensor<4x3x8xf32> -> tensor<4x3x8xf32> {
  ^bb0(%r: tensor<3x8xf32>):
    // expected-error @+1 {{'moe.yield' op using value defined outside the region}}
    moe.yield %c : tensor<3x8xf32>
  }
  return
}

// -----

func.func @yield_outside_expert(%r: tensor<3x8xf32>) {
  // expected-error @+1 {{'moe.yield' op expects parent op 'moe.expert'}}
  moe.yield %r : tensor<3x8xf32>
}

//===----------------------------------------------------------------------===//
// moe.combine
//===----------------------------------------------------------------------===//

// -----

func.func @combine_weights_shape(%ye: tensor<8x3x16xf32>, %ids: tensor<8x3xi32>, %g: tensor<8x4xf32>, %acc: tensor<10x16xf32>) {
  // expected-error @+1 {{'moe.combine' op weights 'tensor<8x4xf32>' must have the shape of the indices [8, 3]}}
  %0 = moe.combine %ye indices(%ids : tensor<8x3xi32>) weights(%g : tensor<8x4xf32>) into %acc : tensor<8x3x16xf32> -> tensor<10x16xf32>
  return
}

// -----

func.func @combine_outputs_shape(%ye: tensor<8x3x32xf32>, %ids: tensor<8x3xi32>, %g: tensor<8x3xf32>, %acc: tensor<10x16xf32>) {
  // expected-error @+1 {{'moe.combine' op expert outputs must be [8, 3, 16] (the indices' [8, 3] rows of the destination's D = 16), got 'tensor<8x3x32xf32>'}}
  %0 = moe.combine %ye indices(%ids : tensor<8x3xi32>) weights(%g : tensor<8x3xf32>) into %acc : tensor<8x3x32xf32> -> tensor<10x16xf32>
  return
}

// -----

func.func @combine_grouped_outputs(%ye: tensor<10x16xf32>, %ids: tensor<20xi32>, %g: tensor<20xf32>, %acc: tensor<10x16xf32>) {
  // expected-error @+1 {{'moe.combine' op expert outputs must be [20, 16] (the indices' [20] rows of the destination's D = 16), got 'tensor<10x16xf32>'}}
  %0 = moe.combine %ye indices(%ids : tensor<20xi32>) weights(%g : tensor<20xf32>) into %acc : tensor<10x16xf32> -> tensor<10x16xf32>
  return
}

// -----

func.func @combine_result_type(%ye: tensor<8x3x16xf32>, %ids: tensor<8x3xi32>, %g: tensor<8x3xf32>, %acc: tensor<10x16xf32>) {
  // expected-error @+1 {{'moe.combine' op failed to verify that all of {init, result} have same type}}
  %0 = "moe.combine"(%ye, %ids, %g, %acc) : (tensor<8x3x16xf32>, tensor<8x3xi32>, tensor<8x3xf32>, tensor<10x16xf32>) -> tensor<10x16xf16>
  return
}

// -----

func.func @combine_soft_weights_rank(%ys: tensor<4x2x16xf32>, %c: tensor<8xf32>, %acc: tensor<10x16xf32>) {
  // expected-error @+1 {{'moe.combine' op without indices (Soft MoE) the combine weights must be [T, E*S], got 'tensor<8xf32>'}}
  %0 = moe.combine %ys weights(%c : tensor<8xf32>) into %acc : tensor<4x2x16xf32> -> tensor<10x16xf32>
  return
}

// -----

func.func @combine_soft_rows(%ys: tensor<4x2x16xf32>, %c: tensor<12x8xf32>, %acc: tensor<10x16xf32>) {
  // expected-error @+1 {{'moe.combine' op Soft MoE combine weights have 12 rows, expected one per token (T = 10)}}
  %0 = moe.combine %ys weights(%c : tensor<12x8xf32>) into %acc : tensor<4x2x16xf32> -> tensor<10x16xf32>
  return
}

// -----

func.func @combine_soft_outputs_rank(%ys: tensor<8x16xf32>, %c: tensor<10x8xf32>, %acc: tensor<10x16xf32>) {
  // expected-error @+1 {{'moe.combine' op Soft MoE expert outputs must be [E, S, D], got 'tensor<8x16xf32>'}}
  %0 = moe.combine %ys weights(%c : tensor<10x8xf32>) into %acc : tensor<8x16xf32> -> tensor<10x16xf32>
  return
}

// -----

func.func @combine_soft_dynamic_slots(%ys: tensor<?x2x16xf32>, %c: tensor<10x8xf32>, %acc: tensor<10x16xf32>) {
  // expected-error @+1 {{'moe.combine' op Soft MoE slots [E, S] must be static, got 'tensor<?x2x16xf32>'}}
  %0 = moe.combine %ys weights(%c : tensor<10x8xf32>) into %acc : tensor<?x2x16xf32> -> tensor<10x16xf32>
  return
}

// -----

func.func @combine_soft_slot_count(%ys: tensor<2x2x16xf32>, %c: tensor<10x8xf32>, %acc: tensor<10x16xf32>) {
  // expected-error @+1 {{'moe.combine' op has E * S = 2 * 2 = 4 slots in the expert outputs, but the combine weights have 8 columns}}
  %0 = moe.combine %ys weights(%c : tensor<10x8xf32>) into %acc : tensor<2x2x16xf32> -> tensor<10x16xf32>
  return
}

// -----

func.func @combine_soft_model_dim(%ys: tensor<4x2x32xf32>, %c: tensor<10x8xf32>, %acc: tensor<10x16xf32>) {
  // expected-error @+1 {{'moe.combine' op feature size 32 of the expert outputs must match the tokens' D = 16}}
  %0 = moe.combine %ys weights(%c : tensor<10x8xf32>) into %acc : tensor<4x2x32xf32> -> tensor<10x16xf32>
  return
}

// -----

func.func @combine_destination_not_float(%ye: tensor<8x3x16xf32>, %ids: tensor<8x3xi32>, %g: tensor<8x3xf32>, %acc: tensor<10x16xi32>) {
  // expected-error @+1 {{operand #3 must be 2D tensor of 32-bit float or 16-bit float or bfloat16 type values, but got 'tensor<10x16xi32>'}}
  %0 = moe.combine %ye indices(%ids : tensor<8x3xi32>) weights(%g : tensor<8x3xf32>) into %acc : tensor<8x3x16xf32> -> tensor<10x16xi32>
  return
}
