// RUN: moe-opt %s -split-input-file -convert-moe-to-linalg | FileCheck %s

// Capacity layout: the slots are flattened, and a loop adds every valid
// slot's gated row into its token's row of the accumulator.
// CHECK-LABEL: func.func @capacity
// CHECK-SAME:    (%[[YE:.+]]: tensor<4x?x16xf32>, %[[IDS:.+]]: tensor<4x?xi32>, %[[G:.+]]: tensor<4x?xf32>, %[[ACC:.+]]: tensor<?x16xf32>)
// CHECK:         %[[FIDS:.+]] = tensor.collapse_shape %[[IDS]] {{\[}}[0, 1]] : tensor<4x?xi32> into tensor<?xi32>
// CHECK:         %[[FG:.+]] = tensor.collapse_shape %[[G]] {{\[}}[0, 1]] : tensor<4x?xf32> into tensor<?xf32>
// CHECK:         %[[FY:.+]] = tensor.collapse_shape %[[YE]] {{\[}}[0, 1], [2]] : tensor<4x?x16xf32> into tensor<?x16xf32>
// CHECK:         %[[T:.+]] = tensor.dim %[[ACC]], %{{.+}} : tensor<?x16xf32>
// CHECK:         %[[N:.+]] = tensor.dim %[[FIDS]], %{{.+}} : tensor<?xi32>
// CHECK:         %[[R:.+]] = scf.for %[[S:.+]] = %{{.+}} to %[[N]] step %{{.+}} iter_args(%[[A:.+]] = %[[ACC]]) -> (tensor<?x16xf32>) {
// CHECK:           %[[ID:.+]] = tensor.extract %[[FIDS]][%[[S]]] : tensor<?xi32>
// CHECK:           %[[ROW:.+]] = arith.index_cast %[[ID]] : i32 to index
// CHECK:           arith.cmpi slt, %[[ROW]], %[[T]] : index
// CHECK:           %[[VALID:.+]] = arith.andi
// CHECK:           scf.if %[[VALID]] -> (tensor<?x16xf32>) {
// CHECK:             %[[GATE:.+]] = tensor.extract %[[FG]][%[[S]]] : tensor<?xf32>
// CHECK:             %[[AROW:.+]] = tensor.extract_slice %[[A]][%{{.+}}, 0] [1, 16] [1, 1] : tensor<?x16xf32> to tensor<16xf32>
// CHECK:             %[[NEW:.+]] = linalg.generic {{.*}} outs(%[[AROW]] : tensor<16xf32>)
// CHECK:               %[[D:.+]] = linalg.index 0 : index
// CHECK:               %[[Y:.+]] = tensor.extract %[[FY]][%[[S]], %[[D]]] : tensor<?x16xf32>
// CHECK:               %[[TERM:.+]] = arith.mulf %[[GATE]], %[[Y]] : f32
// CHECK:               arith.addf %{{.+}}, %[[TERM]] : f32
// CHECK:             tensor.insert_slice %[[NEW]] into %[[A]][%{{.+}}, 0] [1, 16] [1, 1] : tensor<16xf32> into tensor<?x16xf32>
// CHECK:           } else {
// CHECK:             scf.yield %[[A]]
// CHECK:         return %[[R]]
func.func @capacity(%ye: tensor<4x?x16xf32>, %ids: tensor<4x?xi32>, %g: tensor<4x?xf32>, %acc: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %0 = moe.combine %ye indices(%ids : tensor<4x?xi32>) weights(%g : tensor<4x?xf32>) into %acc : tensor<4x?x16xf32> -> tensor<?x16xf32>
  return %0 : tensor<?x16xf32>
}

// -----

// bf16 destinations accumulate in an f32 copy and are narrowed once.
// CHECK-LABEL: func.func @grouped_bf16
// CHECK:         %[[WIDE:.+]] = linalg.generic {{.*}} ins(%{{.+}} : tensor<?x16xbf16>) outs(%{{.+}} : tensor<?x16xf32>)
// CHECK:           arith.extf
// CHECK:         %[[SUM:.+]] = scf.for {{.*}} iter_args(%{{.+}} = %[[WIDE]]) -> (tensor<?x16xf32>)
// CHECK:         linalg.generic {{.*}} ins(%[[SUM]] : tensor<?x16xf32>) outs(%{{.+}} : tensor<?x16xbf16>)
// CHECK:           arith.truncf
func.func @grouped_bf16(%yg: tensor<?x16xbf16>, %ids: tensor<?xi32>, %g: tensor<?xf32>, %acc: tensor<?x16xbf16>) -> tensor<?x16xbf16> {
  %0 = moe.combine %yg indices(%ids : tensor<?xi32>) weights(%g : tensor<?xf32>) into %acc : tensor<?x16xbf16> -> tensor<?x16xbf16>
  return %0 : tensor<?x16xbf16>
}

// -----

// Soft MoE: acc += weights * outputs[E*S, D] as one contraction in f32.
// CHECK-LABEL: func.func @soft
// CHECK:         %[[SLOTS:.+]] = tensor.collapse_shape %{{.+}} {{\[}}[0, 1], [2]] : tensor<4x2x16xf32> into tensor<8x16xf32>
// CHECK:         linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]{{.*}} ins(%{{.+}}, %[[SLOTS]] : tensor<?x8xf32>, tensor<8x16xf32>)
// CHECK:           arith.mulf
// CHECK:           arith.addf
// CHECK-NOT:     scf.for
func.func @soft(%ys: tensor<4x2x16xf32>, %c: tensor<?x8xf32>, %acc: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %0 = moe.combine %ys weights(%c : tensor<?x8xf32>) into %acc : tensor<4x2x16xf32> -> tensor<?x16xf32>
  return %0 : tensor<?x16xf32>
}
