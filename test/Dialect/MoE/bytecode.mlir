// RUN: moe-opt %s -emit-bytecode | moe-opt | FileCheck %s

// The ops and every policy attribute survive a round trip through MLIR
// bytecode.

// CHECK-LABEL: func.func @layers
// CHECK:         moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.25, score = sigmoid, normalize = true, order = priority, routed_scaling_factor = 2.0> %{{.+}} : tensor<8x4xf32> -> tensor<4x5xi32>, tensor<4x5xf32>
// CHECK:         moe.route #moe.token_choice<top_k = 2, n_group = 2, topk_group = 1> %{{.+}} bias(%{{.+}} : tensor<4xf32>) : tensor<8x4xf32> -> tensor<16xi64>, tensor<16xf32>, tensor<5xi64>
// CHECK:         moe.route #moe.expert_choice<capacity_factor = 2.0> %{{.+}} : tensor<8x4xf32> -> tensor<4x4xi32>, tensor<4x4xf32>
// CHECK:         moe.route #moe.soft<slots_per_expert = 2> %{{.+}} : tensor<8x4xf32> -> tensor<8x4xf32>, tensor<8x4xf32>
// CHECK:         moe.dispatch %{{.+}} indices(%{{.+}} : tensor<4x5xi32>) : tensor<8x6xf32> -> tensor<4x5x6xf32>
// CHECK:         moe.expert %{{.+}} : tensor<4x5x6xf32> -> tensor<4x5x6xf32> {
// CHECK:           moe.yield
// CHECK:         moe.combine %{{.+}} indices(%{{.+}} : tensor<4x5xi32>) weights(%{{.+}} : tensor<4x5xf32>) into %{{.+}} : tensor<4x5x6xf32> -> tensor<8x6xf32>
func.func @layers(%x: tensor<8x6xf32>, %s: tensor<8x4xf32>, %b: tensor<4xf32>, %acc: tensor<8x6xf32>) -> tensor<8x6xf32> {
  %ids, %gates = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.25, score = sigmoid, normalize = true, order = priority, routed_scaling_factor = 2.0> %s
      : tensor<8x4xf32> -> tensor<4x5xi32>, tensor<4x5xf32>
  %g:3 = moe.route #moe.token_choice<top_k = 2, n_group = 2, topk_group = 1> %s bias(%b : tensor<4xf32>)
      : tensor<8x4xf32> -> tensor<16xi64>, tensor<16xf32>, tensor<5xi64>
  %e:2 = moe.route #moe.expert_choice<capacity_factor = 2.0> %s : tensor<8x4xf32> -> tensor<4x4xi32>, tensor<4x4xf32>
  %sd:2 = moe.route #moe.soft<slots_per_expert = 2> %s : tensor<8x4xf32> -> tensor<8x4xf32>, tensor<8x4xf32>
  %xe = moe.dispatch %x indices(%ids : tensor<4x5xi32>) : tensor<8x6xf32> -> tensor<4x5x6xf32>
  %ye = moe.expert %xe : tensor<4x5x6xf32> -> tensor<4x5x6xf32> {
  ^bb0(%r: tensor<5x6xf32>):
    moe.yield %r : tensor<5x6xf32>
  }
  %y = moe.combine %ye indices(%ids : tensor<4x5xi32>) weights(%gates : tensor<4x5xf32>) into %acc
      : tensor<4x5x6xf32> -> tensor<8x6xf32>
  return %y : tensor<8x6xf32>
}
