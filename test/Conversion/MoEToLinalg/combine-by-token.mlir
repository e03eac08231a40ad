// RUN: moe-opt %s -convert-moe-to-linalg=combine-by-token -canonicalize | FileCheck %s

// The combine through a per-token inverse index: counts per token (shifted
// by one), a prefix sum, each token's slots in slot order, then one
// independent sum per output element over the token's slots.
// CHECK-LABEL: func.func @grouped
// CHECK-SAME:    (%[[Y:.+]]: tensor<?x16xf32>, %[[IDS:.+]]: tensor<?xi32>, %[[G:.+]]: tensor<?xf32>, %[[ACC:.+]]: tensor<?x16xf32>)
// CHECK:         %[[T:.+]] = tensor.dim %[[ACC]]
// CHECK:         %[[N:.+]] = tensor.dim %[[IDS]]
// CHECK:         %[[COUNTS:.+]] = scf.for %{{.+}} = %{{.+}} to %[[N]]
// CHECK:           tensor.extract %[[IDS]]
// CHECK:           scf.if
// CHECK:             tensor.insert {{.+}} : tensor<?xindex>
// CHECK:         %[[OFFSETS:.+]] = scf.for %{{.+}} = %{{.+}} to %[[T]] {{.+}} iter_args(%{{.+}} = %[[COUNTS]])
// CHECK:         %[[SLOTS:.+]]:2 = scf.for %{{.+}} = %{{.+}} to %[[N]] {{.+}} iter_args(%{{.+}} = %[[OFFSETS]], %{{.+}})
// CHECK:         %[[OUT:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel"]{{.*}} outs(%[[ACC]] : tensor<?x16xf32>)
// CHECK:           %[[TOK:.+]] = linalg.index 0
// CHECK:           %[[COL:.+]] = linalg.index 1
// CHECK:           %[[BEGIN:.+]] = tensor.extract %[[OFFSETS]][%[[TOK]]]
// CHECK:           %[[END:.+]] = tensor.extract %[[OFFSETS]]
// CHECK:           scf.for %[[J:.+]] = %[[BEGIN]] to %[[END]]
// CHECK:             %[[SLOT:.+]] = tensor.extract %[[SLOTS]]#1[%[[J]]]
// CHECK:             %[[GATE:.+]] = tensor.extract %[[G]][%[[SLOT]]]
// CHECK:             %[[ROW:.+]] = tensor.extract %[[Y]][%[[SLOT]], %[[COL]]]
// CHECK:             %[[TERM:.+]] = arith.mulf %[[GATE]], %[[ROW]]
// CHECK:             arith.addf %{{.+}}, %[[TERM]]
// CHECK:         return %[[OUT]]
func.func @grouped(%y: tensor<?x16xf32>, %ids: tensor<?xi32>, %g: tensor<?xf32>, %acc: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %0 = moe.combine %y indices(%ids : tensor<?xi32>) weights(%g : tensor<?xf32>) into %acc : tensor<?x16xf32> -> tensor<?x16xf32>
  return %0 : tensor<?x16xf32>
}
