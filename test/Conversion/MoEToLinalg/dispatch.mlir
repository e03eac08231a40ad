// RUN: moe-opt %s -split-input-file -convert-moe-to-linalg | FileCheck %s

// Capacity layout: a parallel generic over [E, C, D] that reads token rows
// through the ids; ids outside [0, T) (empty slots) give zero rows. T may
// be 0 here, so the read itself is conditional (there may be no row 0).
// CHECK-LABEL: func.func @capacity
// CHECK-SAME:    (%[[X:.+]]: tensor<?x16xf32>, %[[IDS:.+]]: tensor<4x?xi32>)
// CHECK:         %[[T:.+]] = tensor.dim %[[X]], %{{.+}} : tensor<?x16xf32>
// CHECK:         linalg.generic {indexing_maps = [#[[$IN:.+]], #[[$OUT:.+]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[IDS]] : tensor<4x?xi32>) outs(%{{.+}} : tensor<4x?x16xf32>)
// CHECK:         ^bb0(%[[ID:.+]]: i32, %{{.+}}: f32):
// CHECK:           %[[D:.+]] = linalg.index 2 : index
// CHECK:           %[[ROW:.+]] = arith.index_cast %[[ID]] : i32 to index
// CHECK:           %[[GE:.+]] = arith.cmpi sge, %[[ROW]], %{{.+}} : index
// CHECK:           %[[LT:.+]] = arith.cmpi slt, %[[ROW]], %[[T]] : index
// CHECK:           %[[VALID:.+]] = arith.andi %[[GE]], %[[LT]] : i1
// CHECK:           %[[SAFE:.+]] = arith.select %[[VALID]], %[[ROW]], %{{.+}} : index
// CHECK:           %[[R:.+]] = scf.if %[[VALID]] -> (f32) {
// CHECK:             %[[V:.+]] = tensor.extract %[[X]][%[[SAFE]], %[[D]]] : tensor<?x16xf32>
// CHECK:             scf.yield %[[V]] : f32
// CHECK:           } else {
// CHECK:             scf.yield %{{.+}} : f32
// CHECK:           linalg.yield %[[R]] : f32
// CHECK-NOT:     moe.dispatch
func.func @capacity(%x: tensor<?x16xf32>, %ids: tensor<4x?xi32>) -> tensor<4x?x16xf32> {
  %0 = moe.dispatch %x indices(%ids : tensor<4x?xi32>) : tensor<?x16xf32> -> tensor<4x?x16xf32>
  return %0 : tensor<4x?x16xf32>
}

// -----

// With T static and positive, an invalid id reads row 0 and selects zero:
// no control flow in the body, which the vectorizer takes.
// CHECK-LABEL: func.func @static_tokens
// CHECK-SAME:    (%[[X:.+]]: tensor<6x16xf32>, %[[IDS:.+]]: tensor<4x3xi32>)
// CHECK:         linalg.generic
// CHECK:           %[[LT:.+]] = arith.cmpi slt, %{{.+}}, %c6 : index
// CHECK:           %[[VALID:.+]] = arith.andi %{{.+}}, %[[LT]] : i1
// CHECK:           %[[SAFE:.+]] = arith.select %[[VALID]], %{{.+}}, %{{.+}} : index
// CHECK:           %[[V:.+]] = tensor.extract %[[X]][%[[SAFE]], %{{.+}}] : tensor<6x16xf32>
// CHECK:           %[[R:.+]] = arith.select %[[VALID]], %[[V]], %{{.+}} : f32
// CHECK-NOT:       scf.if
// CHECK:           linalg.yield %[[R]] : f32
func.func @static_tokens(%x: tensor<6x16xf32>, %ids: tensor<4x3xi32>) -> tensor<4x3x16xf32> {
  %0 = moe.dispatch %x indices(%ids : tensor<4x3xi32>) : tensor<6x16xf32> -> tensor<4x3x16xf32>
  return %0 : tensor<4x3x16xf32>
}

// -----

// Grouped layout: the same gather over [N, D], here with i64 ids and bf16.
// CHECK-LABEL: func.func @grouped
// CHECK:         linalg.generic {{.*}}iterator_types = ["parallel", "parallel"]{{.*}} ins(%{{.+}} : tensor<?xi64>) outs(%{{.+}} : tensor<?x16xbf16>)
// CHECK:           arith.index_cast %{{.+}} : i64 to index
// CHECK:           tensor.extract %{{.+}} : tensor<?x16xbf16>
func.func @grouped(%x: tensor<?x16xbf16>, %ids: tensor<?xi64>) -> tensor<?x16xbf16> {
  %0 = moe.dispatch %x indices(%ids : tensor<?xi64>) : tensor<?x16xbf16> -> tensor<?x16xbf16>
  return %0 : tensor<?x16xbf16>
}

// -----

// Soft MoE: slots = weights^T * tokens as a contraction over tokens in f32,
// narrowed to bf16 and split into [E, S, D]. No gather.
// CHECK-LABEL: func.func @soft
// CHECK-SAME:    (%[[X:.+]]: tensor<?x16xbf16>, %[[W:.+]]: tensor<?x8xf32>)
// CHECK:         %[[ACC:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%{{.+}} : tensor<8x16xf32>)
// CHECK:         %[[SLOTS:.+]] = linalg.generic {indexing_maps = [#[[$WMAP:.+]], #[[$XMAP:.+]], #[[$OMAP:.+]]], iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[W]], %[[X]] : tensor<?x8xf32>, tensor<?x16xbf16>) outs(%[[ACC]] : tensor<8x16xf32>)
// CHECK:           arith.extf %{{.+}} : bf16 to f32
// CHECK:           arith.mulf
// CHECK:           arith.addf
// CHECK:         %[[NARROW:.+]] = linalg.generic {{.*}} ins(%[[SLOTS]] : tensor<8x16xf32>) outs(%{{.+}} : tensor<8x16xbf16>)
// CHECK:         tensor.expand_shape %[[NARROW]] {{\[}}[0, 1], [2]] output_shape [4, 2, 16] : tensor<8x16xbf16> into tensor<4x2x16xbf16>
// CHECK-NOT:     tensor.extract
func.func @soft(%x: tensor<?x16xbf16>, %w: tensor<?x8xf32>) -> tensor<4x2x16xbf16> {
  %0 = moe.dispatch %x weights(%w : tensor<?x8xf32>) : tensor<?x16xbf16> -> tensor<4x2x16xbf16>
  return %0 : tensor<4x2x16xbf16>
}
