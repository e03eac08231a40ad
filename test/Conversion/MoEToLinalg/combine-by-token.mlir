// RUN: moe-opt %s -split-input-file -convert-moe-to-linalg=combine-by-token -canonicalize | FileCheck %s

// The combine through a per-token inverse index: entry [t, j] of the table
// is an independent search for the j-th slot naming token t (-1 if none);
// then every output element independently adds its token's gated rows in
// slot order. No loop carries state across tokens or columns.
// Grouped layout: a token has N / T (= top_k) slots.
// CHECK-LABEL: func.func @grouped
// CHECK-SAME:    (%[[Y:.+]]: tensor<?x16xf32>, %[[IDS:.+]]: tensor<?xi32>, %[[G:.+]]: tensor<?xf32>, %[[ACC:.+]]: tensor<?x16xf32>)
// CHECK:         %[[N:.+]] = tensor.dim %[[IDS]]
// CHECK:         %[[T:.+]] = tensor.dim %[[ACC]]
// CHECK:         %[[T1:.+]] = arith.maxui %[[T]], %c1
// CHECK:         %[[K:.+]] = arith.ceildivui %[[N]], %[[T1]]
// CHECK:         %[[EMPTY:.+]] = tensor.empty(%{{.+}}, %[[K]]) : tensor<?x?xindex>
// CHECK:         %[[TABLE:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel"]{{.*}} outs(%[[EMPTY]] : tensor<?x?xindex>)
// CHECK:           %[[TOK:.+]] = linalg.index 0
// CHECK:           %[[WANT:.+]] = linalg.index 1
// CHECK:           %[[FOUND:.+]]:2 = scf.for %[[S:.+]] = %c0 to %{{.+}} step %c1 iter_args(%[[CNT:.+]] = %c0, %[[AT:.+]] = %c-1)
// CHECK:             tensor.extract %[[IDS]][%[[S]]]
// CHECK:             arith.cmpi eq, %{{.+}}, %[[TOK]]
// CHECK:             arith.cmpi eq, %[[CNT]], %[[WANT]]
// CHECK:             arith.select %{{.+}}, %[[S]], %[[AT]]
// CHECK:           linalg.yield %[[FOUND]]#1
// CHECK:         %[[OUT:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel"]{{.*}} outs(%[[ACC]] : tensor<?x16xf32>)
// CHECK:           %[[TOK2:.+]] = linalg.index 0
// CHECK:           %[[COL:.+]] = linalg.index 1
// CHECK:           scf.for %[[J:.+]] = %c0 to %[[K]]
// CHECK:             %[[SLOT:.+]] = tensor.extract %[[TABLE]][%[[TOK2]], %[[J]]]
// CHECK:             arith.cmpi sge, %[[SLOT]], %c0
// CHECK:             scf.if
// CHECK:               %[[GATE:.+]] = tensor.extract %[[G]][%[[SLOT]]]
// CHECK:               %[[ROW:.+]] = tensor.extract %[[Y]][%[[SLOT]], %[[COL]]]
// CHECK:               %[[TERM:.+]] = arith.mulf %[[GATE]], %[[ROW]]
// CHECK:               arith.addf %{{.+}}, %[[TERM]]
// CHECK:         return %[[OUT]]
func.func @grouped(%y: tensor<?x16xf32>, %ids: tensor<?xi32>, %g: tensor<?xf32>, %acc: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %0 = moe.combine %y indices(%ids : tensor<?xi32>) weights(%g : tensor<?xf32>) into %acc : tensor<?x16xf32> -> tensor<?x16xf32>
  return %0 : tensor<?x16xf32>
}

// -----

// Capacity layout: at most one slot per expert, so the table has E columns.
// CHECK-LABEL: func.func @capacity
// CHECK:         tensor.empty(%{{.+}}) : tensor<?x4xindex>
// CHECK:         linalg.generic
// CHECK:           scf.for %{{.+}} = %c0 to %c4 step %c1
func.func @capacity(%ye: tensor<4x?x16xf32>, %ids: tensor<4x?xi32>, %g: tensor<4x?xf32>, %acc: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %0 = moe.combine %ye indices(%ids : tensor<4x?xi32>) weights(%g : tensor<4x?xf32>) into %acc : tensor<4x?x16xf32> -> tensor<?x16xf32>
  return %0 : tensor<?x16xf32>
}
