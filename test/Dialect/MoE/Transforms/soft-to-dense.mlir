// RUN: moe-opt %s -split-input-file -moe-soft-to-dense -verify-diagnostics | FileCheck %s

// A whole Soft MoE layer becomes dense linalg: two softmaxes of the one
// logits tensor, slots = D^T X as a matmul with a transposed operand, the
// experts as one batch_matmul (+ batched elementwise ops), and
// Y = init + C Y~ as a matmul. No gather, scatter, sort or top-k remains.
// CHECK-DAG:   #[[$DT:.+]] = affine_map<(d0, d1, d2) -> (d2, d0)>
// CHECK-DAG:   #[[$X:.+]] = affine_map<(d0, d1, d2) -> (d2, d1)>
// CHECK-DAG:   #[[$OUT:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @soft_layer
// CHECK-SAME:    (%[[X:.+]]: tensor<?x16xf32>, %[[L:.+]]: tensor<?x8xf32>, %[[W1:.+]]: tensor<4x16x32xf32>, %[[W2:.+]]: tensor<4x32x16xf32>, %[[ACC:.+]]: tensor<?x16xf32>)
// Dispatch weights: softmax over tokens (reduction over dim 0).
// CHECK:         linalg.generic {{.*}}iterator_types = ["reduction", "parallel"]{{.*}} ins(%[[L]]
// CHECK:           arith.maximumf
// CHECK:           arith.cmpf uno
// CHECK:           arith.fptosi {{.*}} : f32 to i32
// CHECK:           arith.bitcast {{.*}} : i32 to f32
// CHECK:           arith.addf
// CHECK:         %[[DW:.+]] = linalg.generic
// CHECK-NEXT:    ^bb0
// CHECK-NEXT:      arith.divf
// Combine weights: softmax over slots, from the same logits.
// CHECK:         linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]{{.*}} ins(%[[L]]
// CHECK:           arith.maximumf
// CHECK:           arith.cmpf uno
// CHECK:           arith.fptosi {{.*}} : f32 to i32
// CHECK:           arith.bitcast {{.*}} : i32 to f32
// CHECK:           arith.addf
// CHECK:         %[[CW:.+]] = linalg.generic
// CHECK-NEXT:    ^bb0
// CHECK-NEXT:      arith.divf
// CHECK:         %[[SLOTS:.+]] = linalg.matmul indexing_maps = [#[[$DT]], #[[$X]], #[[$OUT]]] ins(%[[DW]], %[[X]] : tensor<?x8xf32>, tensor<?x16xf32>) outs(%{{.+}} : tensor<8x16xf32>)
// CHECK:         %[[XS:.+]] = tensor.expand_shape %[[SLOTS]] {{\[}}[0, 1], [2]] output_shape [4, 2, 16] : tensor<8x16xf32> into tensor<4x2x16xf32>
// CHECK:         %[[H0:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%{{.+}} : tensor<4x2x32xf32>)
// CHECK:         %[[H:.+]] = linalg.batch_matmul ins(%[[XS]], %[[W1]] : tensor<4x2x16xf32>, tensor<4x16x32xf32>) outs(%[[H0]] : tensor<4x2x32xf32>)
// CHECK:         %[[ACT:.+]] = linalg.generic {indexing_maps = [#{{.+}}, #{{.+}}], iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[H]] : tensor<4x2x32xf32>) outs(%{{.+}} : tensor<4x2x32xf32>)
// CHECK:           arith.maximumf
// CHECK:         %[[YS:.+]] = linalg.batch_matmul ins(%[[ACT]], %[[W2]] : tensor<4x2x32xf32>, tensor<4x32x16xf32>)
// CHECK:         %[[FLAT:.+]] = tensor.collapse_shape %[[YS]] {{\[}}[0, 1], [2]] : tensor<4x2x16xf32> into tensor<8x16xf32>
// CHECK:         %[[Y:.+]] = linalg.matmul ins(%[[CW]], %[[FLAT]] : tensor<?x8xf32>, tensor<8x16xf32>) outs(%[[ACC]] : tensor<?x16xf32>)
// CHECK:         return %[[Y]]
// CHECK-NOT:     moe.
// CHECK-NOT:     tensor.extract
// CHECK-NOT:     scf.
func.func @soft_layer(%x: tensor<?x16xf32>, %logits: tensor<?x8xf32>, %w1: tensor<4x16x32xf32>,
                      %w2: tensor<4x32x16xf32>, %acc: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %d, %c = moe.route #moe.soft<slots_per_expert = 2> %logits
      : tensor<?x8xf32> -> tensor<?x8xf32>, tensor<?x8xf32>
  %xs = moe.dispatch %x weights(%d : tensor<?x8xf32>) : tensor<?x16xf32> -> tensor<4x2x16xf32>
  %ys = moe.expert %xs weights(%w1, %w2 : tensor<4x16x32xf32>, tensor<4x32x16xf32>)
      : tensor<4x2x16xf32> -> tensor<4x2x16xf32> {
  ^bb0(%r: tensor<2x16xf32>, %a: tensor<16x32xf32>, %b: tensor<32x16xf32>):
    %z = arith.constant 0.0 : f32
    %he = tensor.empty() : tensor<2x32xf32>
    %h0 = linalg.fill ins(%z : f32) outs(%he : tensor<2x32xf32>) -> tensor<2x32xf32>
    %h = linalg.matmul ins(%r, %a : tensor<2x16xf32>, tensor<16x32xf32>) outs(%h0 : tensor<2x32xf32>) -> tensor<2x32xf32>
    %relu = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
                            iterator_types = ["parallel", "parallel"]}
        ins(%h : tensor<2x32xf32>) outs(%he : tensor<2x32xf32>) {
    ^bb0(%v: f32, %unused: f32):
      %m = arith.maximumf %v, %z : f32
      linalg.yield %m : f32
    } -> tensor<2x32xf32>
    %oe = tensor.empty() : tensor<2x16xf32>
    %o0 = linalg.fill ins(%z : f32) outs(%oe : tensor<2x16xf32>) -> tensor<2x16xf32>
    %o = linalg.matmul ins(%relu, %b : tensor<2x32xf32>, tensor<32x16xf32>) outs(%o0 : tensor<2x16xf32>) -> tensor<2x16xf32>
    moe.yield %o : tensor<2x16xf32>
  }
  %y = moe.combine %ys weights(%c : tensor<?x8xf32>) into %acc : tensor<4x2x16xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// Shapes and indices read inside the body follow the new leading dim:
// tensor.dim of a batched value reads dim + 1, linalg.index moves up.
// CHECK-LABEL: func.func @dims_and_indices
// CHECK:         %[[ONE:.+]] = arith.constant 1 : index
// CHECK:         %[[IDX:.+]] = arith.addi %{{.+}}, %[[ONE]] : index
// CHECK:         tensor.dim %{{.+}}, %[[IDX]] : tensor<2x3x4xf32>
// CHECK:         linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel"]
// CHECK:           linalg.index 2 : index
func.func @dims_and_indices(%x: tensor<?x4xf32>, %logits: tensor<?x6xf32>) -> tensor<2x3x4xf32> {
  %d, %c = moe.route #moe.soft<slots_per_expert = 3> %logits
      : tensor<?x6xf32> -> tensor<?x6xf32>, tensor<?x6xf32>
  %xs = moe.dispatch %x weights(%d : tensor<?x6xf32>) : tensor<?x4xf32> -> tensor<2x3x4xf32>
  %y = moe.expert %xs : tensor<2x3x4xf32> -> tensor<2x3x4xf32> {
  ^bb0(%r: tensor<3x4xf32>):
    %c0 = arith.constant 0 : index
    %n = tensor.dim %r, %c0 : tensor<3x4xf32>
    %e = tensor.empty() : tensor<3x4xf32>
    %o = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
                         iterator_types = ["parallel", "parallel"]}
        ins(%r : tensor<3x4xf32>) outs(%e : tensor<3x4xf32>) {
    ^bb0(%v: f32, %unused: f32):
      %j = linalg.index 1 : index
      %k = arith.addi %j, %n : index
      %ki = arith.index_cast %k : index to i32
      %kf = arith.sitofp %ki : i32 to f32
      %s = arith.addf %v, %kf : f32
      linalg.yield %s : f32
    } -> tensor<3x4xf32>
    moe.yield %o : tensor<3x4xf32>
  }
  return %y : tensor<2x3x4xf32>
}

// -----

// An expert body with an op that cannot be batched keeps its moe.expert;
// the rest of the layer still becomes dense.
// CHECK-LABEL: func.func @unbatchable
// CHECK:         linalg.matmul indexing_maps
// CHECK:         moe.expert
// CHECK:         linalg.matmul ins
func.func @unbatchable(%x: tensor<?x4xf32>, %logits: tensor<?x4xf32>, %acc: tensor<?x4xf32>) -> tensor<?x4xf32> {
  %d, %c = moe.route #moe.soft<slots_per_expert = 2> %logits
      : tensor<?x4xf32> -> tensor<?x4xf32>, tensor<?x4xf32>
  %xs = moe.dispatch %x weights(%d : tensor<?x4xf32>) : tensor<?x4xf32> -> tensor<2x2x4xf32>
  // expected-remark-re @+1 {{Soft MoE experts stay a moe.expert: 'tensor.extract_slice' at {{.*}} cannot be batched over the experts}}
  %ys = moe.expert %xs : tensor<2x2x4xf32> -> tensor<2x2x4xf32> {
  ^bb0(%r: tensor<2x4xf32>):
    %s = tensor.extract_slice %r[0, 0] [2, 4] [1, 1] : tensor<2x4xf32> to tensor<2x4xf32>
    moe.yield %s : tensor<2x4xf32>
  }
  %y = moe.combine %ys weights(%c : tensor<?x4xf32>) into %acc : tensor<2x2x4xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

// Sparse layers are left untouched, without a diagnostic.
// CHECK-LABEL: func.func @sparse
// CHECK:         moe.route #moe.token_choice<top_k = 1>
func.func @sparse(%s: tensor<8x4xf32>) -> tensor<8xi32> {
  %ids, %gates, %offsets = moe.route #moe.token_choice<top_k = 1> %s
      : tensor<8x4xf32> -> tensor<8xi32>, tensor<8xf32>, tensor<5xi32>
  return %ids : tensor<8xi32>
}
