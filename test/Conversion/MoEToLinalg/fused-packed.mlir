// RUN: moe-opt %s --pass-pipeline="builtin.module(moe-pack-expert-weights{panel=64},func.func(convert-moe-to-fused-linalg),canonicalize,cse)" \
// RUN:   | FileCheck %s
// RUN: moe-opt %s --pass-pipeline="builtin.module(moe-pack-expert-weights{panel=64},func.func(convert-moe-to-linalg),canonicalize,cse)" \
// RUN:   | FileCheck %s --check-prefix=REF

// The fused tiles of the packed entry: the gather writes the tile's rows in
// blocks of 4 ([16, K, 4], a reduction step's rows contiguous; only the
// blocks that hold rows), and each
// 64-column panel of the packed weight is one batch_matmul over the blocks
// that hold rows (the last tile of an expert may hold fewer than 64), in an
// scf.forall (the panels run on threads); a panel accumulates in a buffer
// of its own, copied into the result's columns. The body's other ops and
// the scatter run on those blocks' rows only. 96 columns are 2 panels,
// computed into 128 columns and cut back. No [E, C, D] buffer: the gather
// feeds the tile. A rest of more than 8 rows takes a 64-row tile, then come
// tiles of 8, 4, 2 and 1 rows (a decode token computes one row, not 4).
// CHECK-DAG:   #[[$IDMAP:.+]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG:   #[[$ROWMAP:.+]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @layer_packed
// CHECK-NOT:     tensor<4x{{[0-9?]+}}x64xf32>
// CHECK:         scf.for %[[R0:.+]] = %c0 to %{{.+}} step %c64
// CHECK:           %[[LEFT:.+]] = arith.subi %{{.+}}, %[[R0]] : index
// CHECK:           %[[UP:.+]] = arith.addi %[[LEFT]], %c3 : index
// CHECK:           %[[BLOCKS:.+]] = arith.divui %[[UP]], %c4 : index
// CHECK:           %[[ACTIVE:.+]] = arith.minui %[[BLOCKS]], %c16 : index
// The tile's body and its scatter take the active blocks' rows only.
// CHECK:           %[[ROWS:.+]] = arith.muli %[[ACTIVE]], %c4 : index
// CHECK:           %[[IDS1:.+]] = tensor.extract_slice %{{.+}}#0[0] [%[[ROWS]]] [1] : tensor<64xi32> to tensor<?xi32>
// CHECK:           %[[GATES1:.+]] = tensor.extract_slice %{{.+}}#1[0] [%[[ROWS]]] [1] : tensor<64xf32> to tensor<?xf32>
// CHECK:           %[[SLOTS:.+]] = tensor.expand_shape %{{.+}} {{\[\[}}0, 1]] output_shape [16, 4] : tensor<64xi32> into tensor<16x4xi32>
// The gather writes the active blocks only, a block's 4 rows innermost.
// CHECK:           %[[IDS:.+]] = tensor.extract_slice %[[SLOTS]][0, 0] [%[[ACTIVE]], 4] [1, 1] : tensor<16x4xi32> to tensor<?x4xi32>
// CHECK:           %[[LHS:.+]] = linalg.generic {indexing_maps = [#[[$IDMAP]], #[[$ROWMAP]]], {{.+}} ins(%[[IDS]] : tensor<?x4xi32>) outs(%{{.+}} : tensor<?x64x4xf32>)
// CHECK:             linalg.index 1 : index
// CHECK:             tensor.extract %arg0
// CHECK-NOT:       linalg.transpose
// CHECK:           %[[INIT:.+]] = tensor.empty(%[[ROWS]]) : tensor<?x128xf32>
// CHECK:           scf.forall (%{{.+}}) in (2) shared_outs(%{{.+}} = %{{.+}}) -> (tensor<?x128xf32>)
// CHECK:             tensor.extract_slice %{{.+}}[%{{.+}}, 0, 0] [1, 64, 64] [1, 1, 1] : tensor<2x64x64xf32> to tensor<64x64xf32>
// CHECK:             %[[OUT:.+]] = tensor.extract_slice %{{.+}}[0, %{{.+}}] [%[[ROWS]], 64] [1, 1] : tensor<?x128xf32> to tensor<?x64xf32>
// CHECK:             %[[BLOCKED_OUT:.+]] = tensor.expand_shape %[[OUT]] {{\[\[}}0, 1], [2]] output_shape [%[[ACTIVE]], 4, 64]
// CHECK:             %[[ACC:.+]] = linalg.fill {{.+}} -> tensor<?x4x64xf32>
// CHECK:             %[[P:.+]] = linalg.batch_matmul indexing_maps = [#{{.+}}, #{{.+}}, #{{.+}}] {moe.expert_tile, moe.packed_panel = 64 : i64}
// CHECK-SAME:          ins(%[[LHS]], %{{.+}} : tensor<?x64x4xf32>, tensor<64x64xf32>) outs(%[[ACC]] : tensor<?x4x64xf32>)
// CHECK:             linalg.copy ins(%[[P]] : tensor<?x4x64xf32>) outs(%[[BLOCKED_OUT]] : tensor<?x4x64xf32>)
// CHECK:             tensor.parallel_insert_slice %{{.+}} into %{{.+}}[0, %{{.+}}] [%[[ROWS]], 64] [1, 1]
// CHECK:           %[[Y:.+]] = tensor.extract_slice %{{.+}}[0, 0] [%[[ROWS]], 96] [1, 1] : tensor<?x128xf32> to tensor<?x96xf32>
// CHECK:           scf.for %{{.+}} = %c0 to %[[ROWS]] step %c1
// CHECK:             tensor.extract %[[IDS1]]
// CHECK:             tensor.extract %[[GATES1]]
// CHECK:             tensor.extract %[[Y]]
// CHECK:         scf.for %{{.+}} step %c8
// CHECK:           linalg.batch_matmul {{.+}} ins(%{{.+}}, %{{.+}} : tensor<?x64x4xf32>, tensor<64x64xf32>)
// CHECK:         scf.for %{{.+}} step %c4
// CHECK:           linalg.batch_matmul {{.+}} ins(%{{.+}}, %{{.+}} : tensor<?x64x4xf32>, tensor<64x64xf32>)
// CHECK:         scf.for %{{.+}} step %c2
// CHECK:           linalg.batch_matmul {{.+}} ins(%{{.+}}, %{{.+}} : tensor<?x64x2xf32>, tensor<64x64xf32>)
// CHECK:         scf.for %{{.+}} step %c1
// CHECK:           linalg.batch_matmul {{.+}} ins(%{{.+}}, %{{.+}} : tensor<?x64x1xf32>, tensor<64x64xf32>)
// CHECK-NOT:       linalg.batch_matmul

// A body of 6 rows takes blocks of 3 (the largest divisor up to 4); the
// second contraction's left-hand side, the first's result, is blocked
// by linalg.pack, lowered (expand, transpose).
// CHECK-LABEL: func.func @chain_packed
// CHECK:         linalg.generic {{.+}} ins(%{{.+}} : tensor<2x3xi32>) outs(%{{.+}} : tensor<2x64x3xf32>)
// CHECK:         linalg.batch_matmul {{.+}} ins(%{{.+}}, %{{.+}} : tensor<2x64x3xf32>, tensor<64x64xf32>)
// CHECK:         %[[H:.+]] = tensor.expand_shape %{{.+}} {{\[\[}}0, 1], [2]] output_shape [2, 3, 96] : tensor<6x96xf32> into tensor<2x3x96xf32>
// CHECK:         %[[HB:.+]] = linalg.transpose ins(%[[H]] : tensor<2x3x96xf32>) outs(%{{.+}} : tensor<2x96x3xf32>) permutation = [0, 2, 1]
// CHECK:         linalg.batch_matmul {{.+}} ins(%[[HB]], %{{.+}} : tensor<2x96x3xf32>, tensor<96x64xf32>)

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

func.func @chain(%x: tensor<?x64xf32>, %ids: tensor<4x6xi32>, %g: tensor<4x6xf32>,
                 %w1: tensor<4x64x96xf32>, %w2: tensor<4x96x64xf32>, %acc: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %xe = moe.dispatch %x indices(%ids : tensor<4x6xi32>) : tensor<?x64xf32> -> tensor<4x6x64xf32>
  %ye = moe.expert %xe weights(%w1, %w2 : tensor<4x64x96xf32>, tensor<4x96x64xf32>) : tensor<4x6x64xf32> -> tensor<4x6x64xf32> {
  ^bb0(%r: tensor<6x64xf32>, %a: tensor<64x96xf32>, %b: tensor<96x64xf32>):
    %z = arith.constant 0.0 : f32
    %e = tensor.empty() : tensor<6x96xf32>
    %f = linalg.fill ins(%z : f32) outs(%e : tensor<6x96xf32>) -> tensor<6x96xf32>
    %h = linalg.matmul ins(%r, %a : tensor<6x64xf32>, tensor<64x96xf32>) outs(%f : tensor<6x96xf32>) -> tensor<6x96xf32>
    %e2 = tensor.empty() : tensor<6x64xf32>
    %f2 = linalg.fill ins(%z : f32) outs(%e2 : tensor<6x64xf32>) -> tensor<6x64xf32>
    %o = linalg.matmul ins(%h, %b : tensor<6x96xf32>, tensor<96x64xf32>) outs(%f2 : tensor<6x64xf32>) -> tensor<6x64xf32>
    moe.yield %o : tensor<6x64xf32>
  }
  %y = moe.combine %ye indices(%ids : tensor<4x6xi32>) weights(%g : tensor<4x6xf32>) into %acc
      : tensor<4x6x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
