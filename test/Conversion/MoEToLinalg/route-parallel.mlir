// RUN: moe-opt %s -split-input-file -convert-moe-to-linalg=parallel-routing -canonicalize | FileCheck %s

// With parallel-routing no routing scan is a loop: every result element is
// an independent search (quadratic generics, all loops but the searched
// ones parallel), which the GPU mapping spreads over threads.

// Capacity, priority order: each assignment's slot counts the earlier
// assignments (choice, then priority rank) to its expert; each [E, C] slot
// picks the assignment that landed on it.
// CHECK-LABEL: func.func @capacity_priority
// CHECK-NOT:     scf.for
// CHECK:         %[[SLOT:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction", "reduction"]
// CHECK:           arith.cmpi ult
// CHECK:           arith.cmpi slt
// CHECK:         %[[PLACED:.+]]:2 = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction", "reduction"]{{.*}} ins(%{{.+}}, %[[SLOT]], %{{.+}} :
// CHECK:         linalg.generic {{.*}} ins(%[[PLACED]]#0 : tensor<4x4xi32>)
// CHECK:           arith.subi
// CHECK-NOT:     scf.for
func.func @capacity_priority(%s: tensor<8x4xf32>) -> (tensor<4x4xi32>, tensor<4x4xf32>) {
  %ids, %gates = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.0, order = priority> %s
      : tensor<8x4xf32> -> tensor<4x4xi32>, tensor<4x4xf32>
  return %ids, %gates : tensor<4x4xi32>, tensor<4x4xf32>
}

// -----

// Dropless: offsets by a reduction over experts, each assignment's row is
// its expert's offset plus the earlier tokens that chose that expert.
// CHECK-LABEL: func.func @dropless
// CHECK-NOT:     scf.for
// CHECK:         %[[OFFSETS:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]{{.*}} outs(%{{.+}} : tensor<5xi32>)
// CHECK:         %[[SLOT:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction", "reduction"]
// CHECK:         linalg.generic {{.*}}iterator_types = ["parallel", "reduction", "reduction"]{{.*}} ins(%{{.+}}, %[[SLOT]], %{{.+}} :
// CHECK:           tensor.extract %[[OFFSETS]]
// CHECK-NOT:     scf.for
func.func @dropless(%s: tensor<?x4xf32>) -> (tensor<?xi32>, tensor<?xf32>, tensor<5xi32>) {
  %ids, %gates, %offsets = moe.route #moe.token_choice<top_k = 2> %s
      : tensor<?x4xf32> -> tensor<?xi32>, tensor<?xf32>, tensor<5xi32>
  return %ids, %gates, %offsets : tensor<?xi32>, tensor<?xf32>, tensor<5xi32>
}

// -----

// Expert choice with normalization: per-token sums over the slots in slot
// order as a reduction.
// CHECK-LABEL: func.func @expert_choice_normalize
// CHECK-NOT:     scf.for
// CHECK:         linalg.generic {{.*}}iterator_types = ["parallel", "reduction", "reduction"]
// CHECK:           arith.addf
// CHECK-NOT:     scf.for
func.func @expert_choice_normalize(%s: tensor<8x4xf32>) -> (tensor<4x4xi32>, tensor<4x4xf32>) {
  %ids, %gates = moe.route #moe.expert_choice<capacity_factor = 2.0, normalize = true> %s
      : tensor<8x4xf32> -> tensor<4x4xi32>, tensor<4x4xf32>
  return %ids, %gates : tensor<4x4xi32>, tensor<4x4xf32>
}

// -----

// RUN: moe-opt %s -split-input-file -convert-moe-to-linalg="parallel-routing warp-lanes=32" -canonicalize | FileCheck %s --check-prefix=LANES
// RUN: not moe-opt %s -convert-moe-to-linalg=warp-lanes=24 2>&1 | FileCheck %s --check-prefix=BADLANES

// With warp lanes, the softmax maximum and the top-k ranks run over
// [..., 32] lanes, each scanning every 32nd element, combined by xor
// shuffles; lane 0's result is kept.
// LANES-LABEL: func.func @lanes
// LANES:         %[[MAX:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel"]{{.*}} outs(%{{.+}} : tensor<8x32xf32>)
// LANES:           %[[LANE:.+]] = linalg.index 1
// LANES:           scf.for %{{.+}} = %[[LANE]] to %c4 step %c32
// LANES:             arith.maximumf
// LANES:           gpu.shuffle xor %{{.+}}, %c16_i32, %c32_i32 : f32
// LANES:           gpu.shuffle xor %{{.+}}, %c8_i32, %c32_i32 : f32
// LANES:           gpu.shuffle xor %{{.+}}, %c1_i32, %c32_i32 : f32
// LANES:         tensor.extract_slice %[[MAX]][0, 0] [8, 1] [1, 1] : tensor<8x32xf32> to tensor<8xf32>
// LANES:         linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel"]{{.*}} outs(%{{.+}} : tensor<8x4x32xi32>)
// LANES:           gpu.shuffle xor %{{.+}}, %c16_i32, %c32_i32 : i32
// BADLANES: error: convert-moe-to-linalg: warp-lanes must be 0 or a power of two up to 32, got 24
func.func @lanes(%s: tensor<8x4xf32>) -> (tensor<4x4xi32>, tensor<4x4xf32>) {
  %ids, %gates = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.0> %s
      : tensor<8x4xf32> -> tensor<4x4xi32>, tensor<4x4xf32>
  return %ids, %gates : tensor<4x4xi32>, tensor<4x4xf32>
}
