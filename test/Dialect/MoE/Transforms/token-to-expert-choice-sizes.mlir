// RUN: not moe-opt %s -split-input-file -moe-token-to-expert-choice=capacity-factor=1e300 2>&1 | FileCheck %s --check-prefix=HUGE
// RUN: not moe-opt %s -split-input-file -moe-token-to-expert-choice=capacity-factor=1e300 --moe-cpu-pipeline 2>&1 | FileCheck %s --check-prefix=HUGE
// RUN: not moe-opt %s -split-input-file -moe-token-to-expert-choice=capacity-factor=1e17 2>&1 | FileCheck %s --check-prefix=BYTES
// RUN: not moe-opt %s -split-input-file -moe-token-to-expert-choice=capacity-factor=5e-324 2>&1 | FileCheck %s --check-prefix=ZERO

// The expert-choice capacity a capacity-factor= gives must fit: a C past
// int64 used to become a dynamic C on a static-T layer (with tensor.casts in
// the expert body that bufferization in --moe-cpu-pipeline then rejected).
// Now the route gets an error and the pass fails, before any rewrite.

func.func @static_tokens(%x: tensor<16x4xf32>, %s: tensor<16x8xf32>, %acc: tensor<16x4xf32>) -> tensor<16x4xf32> {
  // HUGE: sizes.mlir:[[@LINE+5]]:{{[0-9]+}}: error: moe-token-to-expert-choice: with capacity_factor = 1.0e+300, capacity C = ceil(capacity_factor * k * T / E) = ceil(1.0e+300 * 1 * 16 / 8) = 2.0e+300 does not fit int64; lower capacity_factor or the token count T
  // A C that fits int64, but the dispatched rows [E, C, D] do not.
  // BYTES: sizes.mlir:[[@LINE+3]]:{{[0-9]+}}: error: moe-token-to-expert-choice: too many bytes in the dispatched tokens 'tensor<8x200000000000000000x4xf32>': 8 * 200000000000000000 * 4 elements of 4 bytes overflow int64; use smaller sizes
  // 5e-324 * 16 / 8 = 1e-323: C = 1 for T = 16, no error for this layer.
  // ZERO-NOT: sizes.mlir:[[@LINE+1]]:{{.*}} error
  %ids, %gates, %offsets = moe.route #moe.token_choice<top_k = 2> %s
      : tensor<16x8xf32> -> tensor<32xi32>, tensor<32xf32>, tensor<9xi32>
  %xg = moe.dispatch %x indices(%ids : tensor<32xi32>) : tensor<16x4xf32> -> tensor<32x4xf32>
  %yg = moe.expert %xg offsets(%offsets : tensor<9xi32>) : tensor<32x4xf32> -> tensor<32x4xf32> {
  ^bb0(%r: tensor<?x4xf32>):
    moe.yield %r : tensor<?x4xf32>
  }
  %y = moe.combine %yg indices(%ids : tensor<32xi32>) weights(%gates : tensor<32xf32>) into %acc
      : tensor<32x4xf32> -> tensor<16x4xf32>
  return %y : tensor<16x4xf32>
}

// -----

// With a dynamic T, C is checked at T = 1 (C only grows with T).
func.func @dynamic_tokens(%x: tensor<?x4xf32>, %s: tensor<?x8xf32>, %acc: tensor<?x4xf32>) -> tensor<?x4xf32> {
  // HUGE: sizes.mlir:[[@LINE+2]]:{{[0-9]+}}: error: moe-token-to-expert-choice: with capacity_factor = 1.0e+300, capacity C = ceil(capacity_factor * k * T / E) = ceil(1.0e+300 * 1 * 1 / 8) = 1.25e+299 does not fit int64; lower capacity_factor
  // ZERO: sizes.mlir:[[@LINE+1]]:{{[0-9]+}}: error: moe-token-to-expert-choice: with capacity_factor = 5.0e-324, capacity C = ceil(capacity_factor * k * T / E) = ceil(5.0e-324 * 1 * 1 / 8) is 0 already at T = 1 (the product underflows in f64), so no expert would have a slot; raise capacity_factor so that C >= 1 for every T >= 1
  %ids, %gates, %offsets = moe.route #moe.token_choice<top_k = 2> %s
      : tensor<?x8xf32> -> tensor<?xi32>, tensor<?xf32>, tensor<9xi32>
  %xg = moe.dispatch %x indices(%ids : tensor<?xi32>) : tensor<?x4xf32> -> tensor<?x4xf32>
  %yg = moe.expert %xg offsets(%offsets : tensor<9xi32>) : tensor<?x4xf32> -> tensor<?x4xf32> {
  ^bb0(%r: tensor<?x4xf32>):
    moe.yield %r : tensor<?x4xf32>
  }
  %y = moe.combine %yg indices(%ids : tensor<?xi32>) weights(%gates : tensor<?xf32>) into %acc
      : tensor<?x4xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// HUGE-NOT: bufferization
