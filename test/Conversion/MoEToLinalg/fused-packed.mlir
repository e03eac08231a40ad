// RUN: moe-opt %s --pass-pipeline="builtin.module(moe-pack-expert-weights{panel=64},func.func(convert-moe-to-fused-linalg),canonicalize,cse)" \
// RUN:   | FileCheck %s
// RUN: moe-opt %s --pass-pipeline="builtin.module(moe-pack-expert-weights{panel=64},func.func(convert-moe-to-linalg),canonicalize,cse)" \
// RUN:   | FileCheck %s --check-prefix=REF

// The fused tiles of the packed entry: the gathered rows' tile is
// transposed once ([K, M], a reduction step's rows are contiguous) and
// multiplied by each 64-column panel of the packed weight in an scf.forall
// (the panels run on threads); 96 columns are 2 panels, computed into 128
// columns and cut back. No [E, C, D] buffer: the gather feeds the tile.
// CHECK-LABEL: func.func @layer_packed
// CHECK-NOT:     tensor<4x{{[0-9?]+}}x64xf32>
// CHECK:         linalg.transpose ins(%{{.+}} : tensor<64x64xf32>) {{.+}} permutation = [1, 0]
// CHECK:         scf.forall (%{{.+}}) in (2) shared_outs(%{{.+}} = %{{.+}}) -> (tensor<64x128xf32>)
// CHECK:           tensor.extract_slice %{{.+}}[%{{.+}}, 0, 0] [1, 64, 64] [1, 1, 1] : tensor<2x64x64xf32> to tensor<64x64xf32>
// CHECK:           linalg.matmul indexing_maps = [#{{.+}}, #{{.+}}, #{{.+}}] {moe.expert_tile, moe.packed_panel = 64 : i64}
// CHECK-SAME:        ins(%{{.+}}, %{{.+}} : tensor<64x64xf32>, tensor<64x64xf32>)
// CHECK:           tensor.parallel_insert_slice
// CHECK:         tensor.extract_slice %{{.+}}[0, 0] [64, 96] [1, 1] : tensor<64x128xf32> to tensor<64x96xf32>

// The reference lowering unpacks each expert's slice (linalg.unpack,
// lowered: transpose, collapse, cut the padding) and runs the body as
// written.
// REF-LABEL: func.func @layer_packed
// REF:         linalg.transpose ins(%{{.+}} : tensor<2x64x64xf32>) {{.+}} permutation = [1, 0, 2]
// REF:         tensor.collapse_shape %{{.+}} {{\[\[}}0], [1, 2]] : tensor<64x2x64xf32> into tensor<64x128xf32>
// REF:         tensor.extract_slice %{{.+}}[0, 0] [64, 96] [1, 1] : tensor<64x128xf32> to tensor<64x96xf32>
// REF:         linalg.matmul

func.func @layer(%x: tensor<?x64xf32>, %ids: tensor<4x?xi32>, %g: tensor<4x?xf32>,
                 %w1: tensor<4x64x96xf32>, %acc: tensor<?x96xf32>) -> tensor<?x96xf32> {
  %xe = moe.dispatch %x indices(%ids : tensor<4x?xi32>) : tensor<?x64xf32> -> tensor<4x?x64xf32>
  %ye = moe.expert %xe weights(%w1 : tensor<4x64x96xf32>) : tensor<4x?x64xf32> -> tensor<4x?x96xf32> {
  ^bb0(%r: tensor<?x64xf32>, %a: tensor<64x96xf32>):
    %c0 = arith.constant 0 : index
    %z = arith.constant 0.0 : f32
    %n = tensor.dim %r, %c0 : tensor<?x64xf32>
    %e = tensor.empty(%n) : tensor<?x96xf32>
    %f = linalg.fill ins(%z : f32) outs(%e : tensor<?x96xf32>) -> tensor<?x96xf32>
    %h = linalg.matmul ins(%r, %a : tensor<?x64xf32>, tensor<64x96xf32>) outs(%f : tensor<?x96xf32>) -> tensor<?x96xf32>
    moe.yield %h : tensor<?x96xf32>
  }
  %y = moe.combine %ye indices(%ids : tensor<4x?xi32>) weights(%g : tensor<4x?xf32>) into %acc
      : tensor<4x?x96xf32> -> tensor<?x96xf32>
  return %y : tensor<?x96xf32>
}
