// RUN: moe-opt %s -split-input-file -moe-routing-stats -verify-diagnostics -o /dev/null
// RUN: moe-opt %s -split-input-file -moe-routing-stats=tokens=2048 -moe-token-to-expert-choice -moe-routing-stats=tokens=2048 -o /dev/null 2>&1 | FileCheck %s
// RUN: moe-opt %s -split-input-file -moe-routing-stats=tokens=100000000000000000 -o /dev/null 2>&1 | FileCheck %s --check-prefix=HUGE
// RUN: not moe-opt %s -split-input-file -moe-routing-stats=tokens=4611686018427387904 -o /dev/null 2>&1 | FileCheck %s --check-prefix=WRAP
// RUN: not moe-opt %s -moe-routing-stats=tokens=-3 -o /dev/null 2>&1 | FileCheck %s --check-prefix=NEGATIVE

// NEGATIVE: error: moe-routing-stats: tokens must be at least 0 (0 reports dynamic sizes per token), got -3

// One remark per route with what the routing costs.
// Per row, the expert does 2 * (8 * 16 + 16 * 8) = 512 FLOPs.

// CHECK: remark: routing stats: policy = #moe.token_choice<top_k = 2, capacity_factor = 1.25>, T = 16, E = 4, C = 10, expert rows = 40 (at most 32 token assignments), expert FLOPs = 20480, dispatch buffer = 1280 bytes, expert output buffer = 1280 bytes
// CHECK: remark: routing stats: policy = #moe.expert_choice<capacity_factor = 2.5>, T = 16, E = 4, C = 10, expert rows = 40 (at most 40 token assignments), expert FLOPs = 20480, dispatch buffer = 1280 bytes, expert output buffer = 1280 bytes
func.func @capacity(%x: tensor<16x8xf32>, %s: tensor<16x4xf32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>, %acc: tensor<16x8xf32>) -> tensor<16x8xf32> {
  // expected-remark @+1 {{routing stats: policy = #moe.token_choice<top_k = 2, capacity_factor = 1.25>, T = 16, E = 4, C = 10, expert rows = 40 (at most 32 token assignments), expert FLOPs = 20480, dispatch buffer = 1280 bytes, expert output buffer = 1280 bytes}}
  %ids, %gates = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.25> %s
      : tensor<16x4xf32> -> tensor<4x10xi32>, tensor<4x10xf32>
  %xe = moe.dispatch %x indices(%ids : tensor<4x10xi32>) : tensor<16x8xf32> -> tensor<4x10x8xf32>
  %ye = moe.expert %xe weights(%w1, %w2 : tensor<4x8x16xf32>, tensor<4x16x8xf32>) : tensor<4x10x8xf32> -> tensor<4x10x8xf32> {
  ^bb0(%r: tensor<10x8xf32>, %a: tensor<8x16xf32>, %b: tensor<16x8xf32>):
    %z = arith.constant 0.0 : f32
    %he = tensor.empty() : tensor<10x16xf32>
    %h0 = linalg.fill ins(%z : f32) outs(%he : tensor<10x16xf32>) -> tensor<10x16xf32>
    %h = linalg.matmul ins(%r, %a : tensor<10x8xf32>, tensor<8x16xf32>) outs(%h0 : tensor<10x16xf32>) -> tensor<10x16xf32>
    %oe = tensor.empty() : tensor<10x8xf32>
    %o0 = linalg.fill ins(%z : f32) outs(%oe : tensor<10x8xf32>) -> tensor<10x8xf32>
    %o = linalg.matmul ins(%h, %b : tensor<10x16xf32>, tensor<16x8xf32>) outs(%o0 : tensor<10x8xf32>) -> tensor<10x8xf32>
    moe.yield %o : tensor<10x8xf32>
  }
  %y = moe.combine %ye indices(%ids : tensor<4x10xi32>) weights(%gates : tensor<4x10xf32>) into %acc
      : tensor<4x10x8xf32> -> tensor<16x8xf32>
  return %y : tensor<16x8xf32>
}

// -----

// A dynamic T: sizes are per token unless tokens=N is given. Dropless
// routing computes T * k rows; expert choice with the same compute takes
// C = ceil(2 * 2048 / 4) = 1024 per expert.
// CHECK: remark: routing stats: policy = #moe.token_choice<top_k = 2>, T = 2048 (from tokens=), E = 4, C = dropless, expert rows = 4096 (at most 4096 token assignments), expert FLOPs = 524288, dispatch buffer = 131072 bytes, expert output buffer = 131072 bytes
// CHECK: remark: routing stats: policy = #moe.expert_choice<capacity_factor = 2.0>, T = 2048 (from tokens=), E = 4, C = 1024, expert rows = 4096 (at most 4096 token assignments), expert FLOPs = 524288, dispatch buffer = 131072 bytes, expert output buffer = 131072 bytes
// Sizes past int64 say so (the FLOPs used to wrap negative); a routed size
// past int64 is an error.
// HUGE: remark: routing stats: policy = #moe.token_choice<top_k = 2>, T = 100000000000000000 (from tokens=), E = 4, C = dropless, expert rows = 200000000000000000 (at most 200000000000000000 token assignments), expert FLOPs = > 9223372036854775807 (overflows int64), dispatch buffer = 6400000000000000000 bytes, expert output buffer = 6400000000000000000 bytes
// WRAP: error: moe-routing-stats: with tokens=4611686018427387904, dropless routing has T * top_k = 4611686018427387904 * 2 assignments, which overflows int64; route fewer tokens at a time
func.func @dropless(%x: tensor<?x8xf32>, %s: tensor<?x4xf32>, %w: tensor<4x8x8xf32>, %acc: tensor<?x8xf32>) -> tensor<?x8xf32> {
  // expected-remark @+1 {{routing stats: policy = #moe.token_choice<top_k = 2>, T = ? (sizes per token; set tokens=N to evaluate), E = 4, C = dropless, expert rows = ? (at most ? token assignments), expert FLOPs = ?, dispatch buffer = ? bytes, expert output buffer = ? bytes}}
  %ids, %gates, %offsets = moe.route #moe.token_choice<top_k = 2> %s
      : tensor<?x4xf32> -> tensor<?xi32>, tensor<?xf32>, tensor<5xi32>
  %xg = moe.dispatch %x indices(%ids : tensor<?xi32>) : tensor<?x8xf32> -> tensor<?x8xf32>
  %yg = moe.expert %xg offsets(%offsets : tensor<5xi32>) weights(%w : tensor<4x8x8xf32>) : tensor<?x8xf32> -> tensor<?x8xf32> {
  ^bb0(%r: tensor<?x8xf32>, %a: tensor<8x8xf32>):
    %c0 = arith.constant 0 : index
    %z = arith.constant 0.0 : f32
    %n = tensor.dim %r, %c0 : tensor<?x8xf32>
    %e = tensor.empty(%n) : tensor<?x8xf32>
    %f = linalg.fill ins(%z : f32) outs(%e : tensor<?x8xf32>) -> tensor<?x8xf32>
    %m = linalg.matmul ins(%r, %a : tensor<?x8xf32>, tensor<8x8xf32>) outs(%f : tensor<?x8xf32>) -> tensor<?x8xf32>
    moe.yield %m : tensor<?x8xf32>
  }
  %y = moe.combine %yg indices(%ids : tensor<?xi32>) weights(%gates : tensor<?xf32>) into %acc
      : tensor<?x8xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// Soft MoE: E * S slots.
// CHECK: remark: routing stats: policy = #moe.soft<slots_per_expert = 2>, T = 2048 (from tokens=), E = 4, S = 2, expert rows = 8 (at most 8 token assignments)
func.func @soft(%s: tensor<?x8xf32>) -> tensor<?x8xf32> {
  // expected-remark @+1 {{routing stats: policy = #moe.soft<slots_per_expert = 2>, T = ? (sizes per token; set tokens=N to evaluate), E = 4, S = 2, expert rows = 8 (at most 8 token assignments)}}
  %d, %c = moe.route #moe.soft<slots_per_expert = 2> %s : tensor<?x8xf32> -> tensor<?x8xf32>, tensor<?x8xf32>
  return %d : tensor<?x8xf32>
}

// -----

// A static layer whose expert FLOPs do not fit int64: 512 FLOPs per row
// times E * C = 4 * 8e15 rows. They used to print as a negative number.
// CHECK: remark: routing stats: policy = #moe.token_choice<top_k = 2, capacity_factor = 1.0e+15>, T = 16, E = 4, C = 8000000000000000, expert rows = 32000000000000000 (at most 32 token assignments), expert FLOPs = > 9223372036854775807 (overflows int64), dispatch buffer = 1024000000000000000 bytes, expert output buffer = 1024000000000000000 bytes
func.func @flops_overflow(%x: tensor<16x8xf32>, %s: tensor<16x4xf32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>, %acc: tensor<16x8xf32>) -> tensor<16x8xf32> {
  // expected-remark @+1 {{routing stats: policy = #moe.token_choice<top_k = 2, capacity_factor = 1.0e+15>, T = 16, E = 4, C = 8000000000000000, expert rows = 32000000000000000 (at most 32 token assignments), expert FLOPs = > 9223372036854775807 (overflows int64), dispatch buffer = 1024000000000000000 bytes, expert output buffer = 1024000000000000000 bytes}}
  %ids, %gates = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.0e15> %s
      : tensor<16x4xf32> -> tensor<4x8000000000000000xi32>, tensor<4x8000000000000000xf32>
  %xe = moe.dispatch %x indices(%ids : tensor<4x8000000000000000xi32>) : tensor<16x8xf32> -> tensor<4x8000000000000000x8xf32>
  %ye = moe.expert %xe weights(%w1, %w2 : tensor<4x8x16xf32>, tensor<4x16x8xf32>) : tensor<4x8000000000000000x8xf32> -> tensor<4x8000000000000000x8xf32> {
  ^bb0(%r: tensor<8000000000000000x8xf32>, %a: tensor<8x16xf32>, %b: tensor<16x8xf32>):
    %z = arith.constant 0.0 : f32
    %he = tensor.empty() : tensor<8000000000000000x16xf32>
    %h0 = linalg.fill ins(%z : f32) outs(%he : tensor<8000000000000000x16xf32>) -> tensor<8000000000000000x16xf32>
    %h = linalg.matmul ins(%r, %a : tensor<8000000000000000x8xf32>, tensor<8x16xf32>) outs(%h0 : tensor<8000000000000000x16xf32>) -> tensor<8000000000000000x16xf32>
    %oe = tensor.empty() : tensor<8000000000000000x8xf32>
    %o0 = linalg.fill ins(%z : f32) outs(%oe : tensor<8000000000000000x8xf32>) -> tensor<8000000000000000x8xf32>
    %o = linalg.matmul ins(%h, %b : tensor<8000000000000000x16xf32>, tensor<16x8xf32>) outs(%o0 : tensor<8000000000000000x8xf32>) -> tensor<8000000000000000x8xf32>
    moe.yield %o : tensor<8000000000000000x8xf32>
  }
  %y = moe.combine %ye indices(%ids : tensor<4x8000000000000000xi32>) weights(%gates : tensor<4x8000000000000000xf32>) into %acc
      : tensor<4x8000000000000000x8xf32> -> tensor<16x8xf32>
  return %y : tensor<16x8xf32>
}
