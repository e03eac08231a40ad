// RUN: moe-opt %s -split-input-file -moe-token-to-expert-choice=capacity-factor=2.5 -verify-diagnostics | FileCheck %s

// With capacity-factor=2.5, C = ceil(2.5 * 16 / 4) = 10 per expert.

// CHECK-LABEL: func.func @dynamic_body
// CHECK:         moe.route #moe.expert_choice<capacity_factor = 2.5> %{{.+}} : tensor<16x4xf32> -> tensor<4x10xi32>, tensor<4x10xf32>
// CHECK:         moe.expert %{{.+}} : tensor<4x10x4xf32> -> tensor<4x10x4xf32>
// CHECK-NEXT:    ^bb0(%[[R:.+]]: tensor<10x4xf32>):
// CHECK-NEXT:      %[[D:.+]] = tensor.cast %[[R]] : tensor<10x4xf32> to tensor<?x4xf32>
func.func @dynamic_body(%x: tensor<16x4xf32>, %s: tensor<16x4xf32>, %acc: tensor<16x4xf32>) -> tensor<16x4xf32> {
  %ids, %gates, %offsets = moe.route #moe.token_choice<top_k = 2> %s
      : tensor<16x4xf32> -> tensor<32xi32>, tensor<32xf32>, tensor<5xi32>
  %xg = moe.dispatch %x indices(%ids : tensor<32xi32>) : tensor<16x4xf32> -> tensor<32x4xf32>
  %yg = moe.expert %xg offsets(%offsets : tensor<5xi32>) : tensor<32x4xf32> -> tensor<32x4xf32> {
  ^bb0(%r: tensor<?x4xf32>):
    moe.yield %r : tensor<?x4xf32>
  }
  %y = moe.combine %yg indices(%ids : tensor<32xi32>) weights(%gates : tensor<32xf32>) into %acc
      : tensor<32x4xf32> -> tensor<16x4xf32>
  return %y : tensor<16x4xf32>
}

// -----

// A body written for exactly 5 rows cannot take the 10 rows a larger
// capacity gives it.
// CHECK-LABEL: func.func @static_body
// CHECK:         moe.route #moe.token_choice<top_k = 1, capacity_factor = 1.25>
func.func @static_body(%x: tensor<16x4xf32>, %s: tensor<16x4xf32>, %acc: tensor<16x4xf32>) -> tensor<16x4xf32> {
  // expected-remark-re @+1 {{not converted to expert choice: the expert body at {{.*}} is written for rows 'tensor<5x4xf32>' and expert choice gives it 'tensor<10x4xf32>'; write the body for a dynamic row count}}
  %ids, %gates = moe.route #moe.token_choice<top_k = 1, capacity_factor = 1.25> %s
      : tensor<16x4xf32> -> tensor<4x5xi32>, tensor<4x5xf32>
  %xe = moe.dispatch %x indices(%ids : tensor<4x5xi32>) : tensor<16x4xf32> -> tensor<4x5x4xf32>
  %ye = moe.expert %xe : tensor<4x5x4xf32> -> tensor<4x5x4xf32> {
  ^bb0(%r: tensor<5x4xf32>):
    %c = arith.constant dense<1.0> : tensor<5x4xf32>
    moe.yield %c : tensor<5x4xf32>
  }
  %y = moe.combine %ye indices(%ids : tensor<4x5xi32>) weights(%gates : tensor<4x5xf32>) into %acc
      : tensor<4x5x4xf32> -> tensor<16x4xf32>
  return %y : tensor<16x4xf32>
}
