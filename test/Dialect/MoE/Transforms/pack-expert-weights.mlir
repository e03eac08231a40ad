// RUN: moe-opt %s --split-input-file --moe-pack-expert-weights=panel=64 | FileCheck %s
// RUN: moe-opt %s --split-input-file --moe-pack-expert-weights=panel=64 | moe-opt | FileCheck %s
// RUN: not moe-opt %s --split-input-file --moe-pack-expert-weights=panel=0 2>&1 | FileCheck %s --check-prefix=PANEL

// PANEL: error: moe-pack-expert-weights: panel must be in [1, 4096], got 0

// The layer keeps its entry; the packed entry takes [E, ceil(N/64), K, 64]
// weights (96 columns: 2 panels, the second zero-padded), and the pack
// function is linalg.pack lowered: pad N to 128, split it, move the panels
// out.
// CHECK-LABEL: func.func @layer(%{{.+}}: tensor<?x64xf32>, %{{.+}}: tensor<4x64x96xf32>, %{{.+}}: tensor<4x96x64xf32>)
// CHECK:         moe.expert
// CHECK-NOT:     weight_layouts
// CHECK-LABEL: func.func @layer_pack_weights(%{{.+}}: tensor<4x64x96xf32>, %{{.+}}: tensor<4x96x64xf32>)
// CHECK-SAME:      -> (tensor<4x2x64x64xf32>, tensor<4x1x96x64xf32>)
// CHECK:         tensor.pad %{{.+}} low[0, 0, 0] high[0, 0, 32]
// CHECK:         tensor.expand_shape %{{.+}} {{\[\[}}0], [1], [2, 3]] output_shape [4, 64, 2, 64]
// CHECK:         linalg.transpose {{.+}} permutation = [0, 2, 1, 3]
// CHECK:         return %{{.+}}, %{{.+}} : tensor<4x2x64x64xf32>, tensor<4x1x96x64xf32>
// CHECK-LABEL: func.func @layer_packed(%{{.+}}: tensor<?x64xf32>, %{{.+}}: tensor<4x2x64x64xf32>, %{{.+}}: tensor<4x1x96x64xf32>)
// CHECK:         moe.expert {{.+}} weights(%{{.+}}, %{{.+}} : tensor<4x2x64x64xf32>, tensor<4x1x96x64xf32>)
// CHECK-SAME:      attributes {weight_layouts = [#moe.packed<panel = 64>, #moe.packed<panel = 64>]}
// CHECK:         ^bb0(%{{.+}}: tensor<?x64xf32>, %{{.+}}: tensor<64x96xf32>, %{{.+}}: tensor<96x64xf32>):
func.func @layer(%x: tensor<?x64xf32>, %w1: tensor<4x64x96xf32>, %w2: tensor<4x96x64xf32>) -> tensor<?x64xf32> {
  %c0 = arith.constant 0 : index
  %z = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %ids = tensor.empty(%t) : tensor<?xi32>
  %offsets = arith.constant dense<0> : tensor<5xi32>
  %gates = tensor.empty(%t) : tensor<?xf32>
  %xe = moe.dispatch %x indices(%ids : tensor<?xi32>) : tensor<?x64xf32> -> tensor<?x64xf32>
  %ye = moe.expert %xe offsets(%offsets : tensor<5xi32>) weights(%w1, %w2 : tensor<4x64x96xf32>, tensor<4x96x64xf32>)
      : tensor<?x64xf32> -> tensor<?x64xf32> {
  ^bb0(%r: tensor<?x64xf32>, %a: tensor<64x96xf32>, %b: tensor<96x64xf32>):
    %c0_ = arith.constant 0 : index
    %z_ = arith.constant 0.0 : f32
    %n = tensor.dim %r, %c0_ : tensor<?x64xf32>
    %e = tensor.empty(%n) : tensor<?x96xf32>
    %f = linalg.fill ins(%z_ : f32) outs(%e : tensor<?x96xf32>) -> tensor<?x96xf32>
    %h = linalg.matmul ins(%r, %a : tensor<?x64xf32>, tensor<64x96xf32>) outs(%f : tensor<?x96xf32>) -> tensor<?x96xf32>
    %e2 = tensor.empty(%n) : tensor<?x64xf32>
    %f2 = linalg.fill ins(%z_ : f32) outs(%e2 : tensor<?x64xf32>) -> tensor<?x64xf32>
    %y = linalg.matmul ins(%h, %b : tensor<?x96xf32>, tensor<96x64xf32>) outs(%f2 : tensor<?x64xf32>) -> tensor<?x64xf32>
    moe.yield %y : tensor<?x64xf32>
  }
  %acc = linalg.fill ins(%z : f32) outs(%x : tensor<?x64xf32>) -> tensor<?x64xf32>
  %out = moe.combine %ye indices(%ids : tensor<?xi32>) weights(%gates : tensor<?xf32>) into %acc
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %out : tensor<?x64xf32>
}

// -----

// A weight the body reads otherwise than as a matmul's right-hand side
// (here a left-hand side) is not packed; with nothing to pack, no function
// is added.
// CHECK-LABEL: func.func @lhs_use
// CHECK-NOT:   func.func @lhs_use_packed
func.func @lhs_use(%x: tensor<4x8x64xf32>, %w: tensor<4x8x64xf32>) -> tensor<4x8x8xf32> {
  %y = moe.expert %x weights(%w : tensor<4x8x64xf32>) : tensor<4x8x64xf32> -> tensor<4x8x8xf32> {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<8x64xf32>):
    %e = tensor.empty() : tensor<8x8xf32>
    %m = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                        affine_map<(m, n, k) -> (n, k)>,
                                        affine_map<(m, n, k) -> (m, n)>]
        ins(%r, %a : tensor<8x64xf32>, tensor<8x64xf32>) outs(%e : tensor<8x8xf32>) -> tensor<8x8xf32>
    moe.yield %m : tensor<8x8xf32>
  }
  return %y : tensor<4x8x8xf32>
}

