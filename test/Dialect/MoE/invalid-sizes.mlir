// RUN: moe-opt %s -split-input-file -verify-diagnostics

// Sizes the verifiers reject: static sizes of 0 (T, D, H, E, C), and sizes
// or products of sizes that do not fit int64 (T * k, C, element counts,
// bytes). See "Sizes" in the dialect description.

//===----------------------------------------------------------------------===//
// Overflow
//===----------------------------------------------------------------------===//

// T * k wraps to 0: the dropless verifier used to expect tensor<0xi32> ids.
func.func @dropless_rows_overflow(%s: tensor<4611686018427387904x8xf32>) {
  // expected-error @+1 {{'moe.route' op dropless routing has T * top_k = 4611686018427387904 * 8 assignments, which overflows int64; route fewer tokens at a time}}
  %0:3 = moe.route #moe.token_choice<top_k = 8> %s : tensor<4611686018427387904x8xf32> -> tensor<0xi32>, tensor<0xf32>, tensor<9xi32>
  return
}

// -----

// T = INT64_MAX: the diagnostic used to build a negative dimension.
func.func @dropless_rows_int64_max(%s: tensor<9223372036854775807x8xf32>) {
  // expected-error @+1 {{'moe.route' op dropless routing has T * top_k = 9223372036854775807 * 2 assignments, which overflows int64; route fewer tokens at a time}}
  %0:3 = moe.route #moe.token_choice<top_k = 2> %s : tensor<9223372036854775807x8xf32> -> tensor<?xi32>, tensor<?xf32>, tensor<9xi32>
  return
}

// -----

func.func @scores_elements_overflow(%s: tensor<9223372036854775807x8xf32>) {
  // expected-error @+1 {{'moe.route' op too many elements in the scores 'tensor<9223372036854775807x8xf32>': 9223372036854775807 * 8 overflows int64; use smaller sizes}}
  %0:3 = moe.route #moe.token_choice<top_k = 1> %s : tensor<9223372036854775807x8xf32> -> tensor<9223372036854775807xi32>, tensor<9223372036854775807xf32>, tensor<9xi32>
  return
}

// -----

// C = ceil(2e300) used to convert to int64 as INT64_MIN, i.e. '?'.
func.func @capacity_overflow(%s: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.route' op capacity C = ceil(capacity_factor * k * T / E) = ceil(1.0e+300 * 1 * 16 / 8) = 2.0e+300 does not fit int64; lower capacity_factor or the token count T}}
  %0:2 = moe.route #moe.token_choice<top_k = 1, capacity_factor = 1.0e300> %s : tensor<16x8xf32> -> tensor<8x?xi32>, tensor<8x?xf32>
  return
}

// -----

// With a dynamic T, C already overflows at T = 1.
func.func @capacity_overflow_dynamic(%s: tensor<?x8xf32>) {
  // expected-error @+1 {{'moe.route' op capacity C = ceil(capacity_factor * k * T / E) = ceil(1.0e+300 * 1 * 1 / 8) = 1.25e+299 does not fit int64; lower capacity_factor}}
  %0:2 = moe.route #moe.expert_choice<capacity_factor = 1.0e300> %s : tensor<?x8xf32> -> tensor<8x?xi32>, tensor<8x?xf32>
  return
}

// -----

// C fits, the token ids [E, C] in i64 do not: 8 * 2e17 * 8 bytes.
func.func @routing_bytes_overflow(%s: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.route' op too many bytes in result #0 (token ids) 'tensor<8x200000000000000000xi64>': 8 * 200000000000000000 elements of 8 bytes overflow int64; use smaller sizes}}
  %0:2 = moe.route #moe.expert_choice<capacity_factor = 1.0e17> %s : tensor<16x8xf32> -> tensor<8x200000000000000000xi64>, tensor<8x200000000000000000xf32>
  return
}

// -----

func.func @dispatch_bytes_overflow(%x: tensor<16x4xf32>, %ids: tensor<1152921504606846976xi32>) {
  // expected-error @+1 {{'moe.dispatch' op too many bytes in the result 'tensor<1152921504606846976x4xf32>': 1152921504606846976 * 4 elements of 4 bytes overflow int64; use smaller sizes}}
  %0 = moe.dispatch %x indices(%ids : tensor<1152921504606846976xi32>) : tensor<16x4xf32> -> tensor<1152921504606846976x4xf32>
  return
}

// -----

func.func @expert_weight_elements_overflow(%xe: tensor<8x2x4xf32>, %w: tensor<8x4x1152921504606846976xf32>) {
  // expected-error @+1 {{'moe.expert' op too many elements in weight #0 'tensor<8x4x1152921504606846976xf32>': 8 * 4 * 1152921504606846976 overflows int64; use smaller sizes}}
  %0 = moe.expert %xe weights(%w : tensor<8x4x1152921504606846976xf32>) : tensor<8x2x4xf32> -> tensor<8x2x4xf32> {
  ^bb0(%rows: tensor<2x4xf32>, %a: tensor<4x1152921504606846976xf32>):
    moe.yield %rows : tensor<2x4xf32>
  }
  return
}

//===----------------------------------------------------------------------===//
// Zero sizes
//===----------------------------------------------------------------------===//

// -----

// A static empty token batch (it used to verify with C = 0, and every
// lowering then failed inside the generated IR).
func.func @no_tokens(%s: tensor<0x4xf32>) {
  // expected-error @+1 {{'moe.route' op T is 0 in the scores 'tensor<0x4xf32>'; every static size of a layer must be at least 1 (with no tokens, features, hidden units or experts there is nothing to compute); write a token count that is only known at run time, and may be 0, as '?'}}
  %0:2 = moe.route #moe.token_choice<top_k = 1, capacity_factor = 1.0> %s : tensor<0x4xf32> -> tensor<4x0xi32>, tensor<4x0xf32>
  return
}

// -----

func.func @no_tokens_dropless(%s: tensor<0x4xf32>) {
  // expected-error @+1 {{'moe.route' op T is 0 in the scores 'tensor<0x4xf32>'}}
  %0:3 = moe.route #moe.token_choice<top_k = 2> %s : tensor<0x4xf32> -> tensor<0xi32>, tensor<0xf32>, tensor<5xi32>
  return
}

// -----

// A subnormal capacity factor: C = ceil(5e-324 * 4 / 8) = ceil(0) = 0.
func.func @capacity_zero(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.route' op capacity C = ceil(capacity_factor * k * T / E) = ceil(5.0e-324 * 1 * 4 / 8) is 0 (the product underflows in f64), so no expert would have a slot; raise capacity_factor so that C >= 1}}
  %0:2 = moe.route #moe.token_choice<top_k = 1, capacity_factor = 5.0e-324> %s : tensor<4x8xf32> -> tensor<8x0xi32>, tensor<8x0xf32>
  return
}

// -----

// C never decreases as T grows, so C(T = 1) >= 1 is the rule for a dynamic T.
func.func @capacity_zero_dynamic(%s: tensor<?x8xf32>) {
  // expected-error @+1 {{'moe.route' op capacity C = ceil(capacity_factor * k * T / E) = ceil(5.0e-324 * 1 * 1 / 8) is 0 already at T = 1 (the product underflows in f64), so no expert would have a slot; raise capacity_factor so that C >= 1 for every T >= 1}}
  %0:2 = moe.route #moe.expert_choice<capacity_factor = 5.0e-324> %s : tensor<?x8xf32> -> tensor<8x?xi32>, tensor<8x?xf32>
  return
}

// -----

func.func @dispatch_no_features(%x: tensor<16x0xf32>, %ids: tensor<8x4xi32>) {
  // expected-error @+1 {{'moe.dispatch' op D is 0 in the tokens 'tensor<16x0xf32>'; every static size of a layer must be at least 1}}
  %0 = moe.dispatch %x indices(%ids : tensor<8x4xi32>) : tensor<16x0xf32> -> tensor<8x4x0xf32>
  return
}

// -----

func.func @dispatch_no_tokens(%x: tensor<0x4xf32>, %ids: tensor<8x4xi32>) {
  // expected-error @+1 {{'moe.dispatch' op T is 0 in the tokens 'tensor<0x4xf32>'}}
  %0 = moe.dispatch %x indices(%ids : tensor<8x4xi32>) : tensor<0x4xf32> -> tensor<8x4x4xf32>
  return
}

// -----

func.func @dispatch_no_slots(%x: tensor<16x4xf32>, %ids: tensor<8x0xi32>) {
  // expected-error @+1 {{'moe.dispatch' op C is 0 in the indices 'tensor<8x0xi32>'}}
  %0 = moe.dispatch %x indices(%ids : tensor<8x0xi32>) : tensor<16x4xf32> -> tensor<8x0x4xf32>
  return
}

// -----

func.func @expert_no_hidden_units(%xe: tensor<8x2x4xf32>, %w1: tensor<8x4x0xf32>, %w2: tensor<8x0x4xf32>) {
  // expected-error @+1 {{'moe.expert' op dimension #2 is 0 in weight #0 'tensor<8x4x0xf32>'; every static size of a layer must be at least 1}}
  %0 = moe.expert %xe weights(%w1, %w2 : tensor<8x4x0xf32>, tensor<8x0x4xf32>) : tensor<8x2x4xf32> -> tensor<8x2x4xf32> {
  ^bb0(%rows: tensor<2x4xf32>, %a: tensor<4x0xf32>, %b: tensor<0x4xf32>):
    moe.yield %rows : tensor<2x4xf32>
  }
  return
}

// -----

func.func @expert_no_output_features(%xe: tensor<8x2x4xf32>) {
  // expected-error @+1 {{'moe.expert' op D is 0 in the result 'tensor<8x2x0xf32>'}}
  %0 = moe.expert %xe : tensor<8x2x4xf32> -> tensor<8x2x0xf32> {
  ^bb0(%rows: tensor<2x4xf32>):
    %e = tensor.empty() : tensor<2x0xf32>
    moe.yield %e : tensor<2x0xf32>
  }
  return
}

// -----

func.func @expert_no_experts(%xg: tensor<?x4xf32>, %offsets: tensor<1xi32>) {
  // expected-error @+1 {{'moe.expert' op offsets 'tensor<1xi32>' give E = 0 experts; the grouped layout has E + 1 offsets for E >= 1 experts}}
  %0 = moe.expert %xg offsets(%offsets : tensor<1xi32>) : tensor<?x4xf32> -> tensor<?x4xf32> {
  ^bb0(%rows: tensor<?x4xf32>):
    moe.yield %rows : tensor<?x4xf32>
  }
  return
}

// -----

func.func @combine_no_tokens(%ye: tensor<8x3x16xf32>, %ids: tensor<8x3xi32>, %g: tensor<8x3xf32>, %acc: tensor<0x16xf32>) {
  // expected-error @+1 {{'moe.combine' op T is 0 in the destination 'tensor<0x16xf32>'}}
  %0 = moe.combine %ye indices(%ids : tensor<8x3xi32>) weights(%g : tensor<8x3xf32>) into %acc : tensor<8x3x16xf32> -> tensor<0x16xf32>
  return
}

// -----

func.func @combine_soft_no_slots(%ys: tensor<4x0x16xf32>, %c: tensor<10x8xf32>, %acc: tensor<10x16xf32>) {
  // expected-error @+1 {{'moe.combine' op S is 0 in the expert outputs 'tensor<4x0x16xf32>'}}
  %0 = moe.combine %ys weights(%c : tensor<10x8xf32>) into %acc : tensor<4x0x16xf32> -> tensor<10x16xf32>
  return
}

// -----

// A dynamic T stays valid: it may be 0 at run time.
func.func @dynamic_tokens(%s: tensor<?x4xf32>) {
  %0:2 = moe.route #moe.token_choice<top_k = 1, capacity_factor = 1.0> %s : tensor<?x4xf32> -> tensor<4x?xi32>, tensor<4x?xf32>
  return
}
