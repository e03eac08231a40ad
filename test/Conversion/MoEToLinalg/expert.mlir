// RUN: moe-opt %s -split-input-file -convert-moe-to-linalg -verify-diagnostics | FileCheck %s
// RUN: not moe-opt %s -split-input-file -convert-moe-to-linalg=expert-tile-rows=5000 2>&1 | FileCheck %s --check-prefix=TILEROWS
// RUN: not moe-opt %s -split-input-file -convert-moe-to-linalg=expert-tile-rows=-1 2>&1 | FileCheck %s --check-prefix=TILEROWS-NEG

// TILEROWS: error: convert-moe-to-linalg: expert-tile-rows must be 0 (whole experts) or in [1, 4096], got 5000
// TILEROWS-NEG: error: convert-moe-to-linalg: expert-tile-rows must be 0 (whole experts) or in [1, 4096], got -1

// Capacity layout: an scf.forall over the experts; the body is the expert
// region on slices of the inputs and weights, written back in parallel.
// CHECK-LABEL: func.func @capacity
// CHECK-SAME:    (%[[XE:.+]]: tensor<4x?x8xf32>, %[[W:.+]]: tensor<4x8x16xf32>)
// CHECK:         %[[C:.+]] = tensor.dim %[[XE]], %c1 : tensor<4x?x8xf32>
// CHECK:         %[[INIT:.+]] = tensor.empty(%[[C]]) : tensor<4x?x16xf32>
// CHECK:         %[[R:.+]] = scf.forall (%[[E:.+]]) in (4) shared_outs(%[[OUT:.+]] = %[[INIT]]) -> (tensor<4x?x16xf32>) {
// CHECK:           %[[ROWS:.+]] = tensor.extract_slice %[[XE]][%[[E]], 0, 0] [1, %{{.+}}, 8] [1, 1, 1] : tensor<4x?x8xf32> to tensor<?x8xf32>
// CHECK:           %[[WE:.+]] = tensor.extract_slice %[[W]][%[[E]], 0, 0] [1, 8, 16] [1, 1, 1] : tensor<4x8x16xf32> to tensor<8x16xf32>
// CHECK:           %[[M:.+]] = linalg.matmul ins(%[[ROWS]], %[[WE]] : tensor<?x8xf32>, tensor<8x16xf32>)
// CHECK:           scf.forall.in_parallel {
// CHECK:             tensor.parallel_insert_slice %[[M]] into %[[OUT]][%[[E]], 0, 0] [1, %{{.+}}, 16] [1, 1, 1] : tensor<?x16xf32> into tensor<4x?x16xf32>
// CHECK:         return %[[R]]
// CHECK-NOT:     moe.
func.func @capacity(%xe: tensor<4x?x8xf32>, %w: tensor<4x8x16xf32>) -> tensor<4x?x16xf32> {
  %0 = moe.expert %xe weights(%w : tensor<4x8x16xf32>) : tensor<4x?x8xf32> -> tensor<4x?x16xf32> {
  ^bb0(%r: tensor<?x8xf32>, %a: tensor<8x16xf32>):
    %c0 = arith.constant 0 : index
    %z = arith.constant 0.0 : f32
    %n = tensor.dim %r, %c0 : tensor<?x8xf32>
    %e = tensor.empty(%n) : tensor<?x16xf32>
    %f = linalg.fill ins(%z : f32) outs(%e : tensor<?x16xf32>) -> tensor<?x16xf32>
    %m = linalg.matmul ins(%r, %a : tensor<?x8xf32>, tensor<8x16xf32>) outs(%f : tensor<?x16xf32>) -> tensor<?x16xf32>
    moe.yield %m : tensor<?x16xf32>
  }
  return %0 : tensor<4x?x16xf32>
}

// -----

// Grouped layout: expert e owns rows offsets[e] to offsets[e+1]; the bounds
// are computed once, as start = max(offsets[0..e]) and end = max(start,
// offsets[e+1]) clamped to [0, N], so that any offsets give disjoint ranges
// in bounds. Rows no expert owns start as zero.
// CHECK-LABEL: func.func @grouped
// CHECK-SAME:    (%[[XG:.+]]: tensor<?x8xf32>, %[[OFF:.+]]: tensor<5xi32>
// CHECK:         %[[ZERO:.+]] = linalg.fill {{.*}} -> tensor<?x16xf32>
// CHECK:         %[[N:.+]] = tensor.dim %[[XG]]
// CHECK:         %[[B:.+]]:2 = linalg.generic {{.*}} outs(%{{.+}}, %{{.+}} : tensor<4xi32>, tensor<4xi32>)
// CHECK:           %[[I:.+]] = linalg.index 0 : index
// CHECK:           %[[NEXT:.+]] = arith.addi %[[I]], %c1 : index
// CHECK:           %[[MOST:.+]] = scf.for %{{.+}} = %{{.+}} to %[[NEXT]]
// CHECK:             tensor.extract %[[OFF]]
// CHECK:             arith.maxsi
// CHECK:           %[[S:.+]] = arith.minsi %[[MOST]], %[[N]] : index
// CHECK:           %[[HI:.+]] = tensor.extract %[[OFF]][%[[NEXT]]] : tensor<5xi32>
// CHECK:           %[[LAST:.+]] = arith.index_cast %[[HI]] : i32 to index
// CHECK:           %[[E0:.+]] = arith.maxsi %[[LAST]], %[[S]] : index
// CHECK:           %[[E1:.+]] = arith.minsi %[[E0]], %[[N]] : index
// CHECK:           arith.subi %[[E1]], %[[S]] : index
// CHECK:         scf.forall (%[[E:.+]]) in (4) shared_outs(%[[OUT:.+]] = %[[ZERO]]) -> (tensor<?x16xf32>) {
// CHECK:           %[[S0:.+]] = tensor.extract %[[B]]#0[%[[E]]] : tensor<4xi32>
// CHECK:           %[[START:.+]] = arith.index_cast %[[S0]] : i32 to index
// CHECK:           %[[C0:.+]] = tensor.extract %[[B]]#1[%[[E]]] : tensor<4xi32>
// CHECK:           %[[COUNT:.+]] = arith.index_cast %[[C0]] : i32 to index
// CHECK:           tensor.extract_slice %[[XG]][%[[START]], 0] [%[[COUNT]], 8] [1, 1] : tensor<?x8xf32> to tensor<?x8xf32>
// CHECK:           tensor.parallel_insert_slice %{{.+}} into %[[OUT]][%[[START]], 0] [%[[COUNT]], 16] [1, 1] : tensor<?x16xf32> into tensor<?x16xf32>
func.func @grouped(%xg: tensor<?x8xf32>, %off: tensor<5xi32>, %w: tensor<4x8x16xf32>) -> tensor<?x16xf32> {
  %0 = moe.expert %xg offsets(%off : tensor<5xi32>) weights(%w : tensor<4x8x16xf32>) : tensor<?x8xf32> -> tensor<?x16xf32> {
  ^bb0(%r: tensor<?x8xf32>, %a: tensor<8x16xf32>):
    %c0 = arith.constant 0 : index
    %z = arith.constant 0.0 : f32
    %n = tensor.dim %r, %c0 : tensor<?x8xf32>
    %e = tensor.empty(%n) : tensor<?x16xf32>
    %f = linalg.fill ins(%z : f32) outs(%e : tensor<?x16xf32>) -> tensor<?x16xf32>
    %m = linalg.matmul ins(%r, %a : tensor<?x8xf32>, tensor<8x16xf32>) outs(%f : tensor<?x16xf32>) -> tensor<?x16xf32>
    moe.yield %m : tensor<?x16xf32>
  }
  return %0 : tensor<?x16xf32>
}

// -----

// An expert whose output width is only known at run time cannot be
// lowered: the pass says so on the op instead of crashing.
func.func @dynamic_output_width(%xe: tensor<4x3x8xf32>, %w: tensor<4x8x?xf32>) -> tensor<4x3x?xf32> {
  // expected-error @+2 {{'moe.expert' op cannot be lowered: the expert output feature size must be static, got 'tensor<4x3x?xf32>'}}
  // expected-error @+1 {{failed to legalize operation 'moe.expert' that was explicitly marked illegal}}
  %0 = moe.expert %xe weights(%w : tensor<4x8x?xf32>) : tensor<4x3x8xf32> -> tensor<4x3x?xf32> {
  ^bb0(%r: tensor<3x8xf32>, %a: tensor<8x?xf32>):
    %c1 = arith.constant 1 : index
    %z = arith.constant 0.0 : f32
    %n = tensor.dim %a, %c1 : tensor<8x?xf32>
    %e = tensor.empty(%n) : tensor<3x?xf32>
    %f = linalg.fill ins(%z : f32) outs(%e : tensor<3x?xf32>) -> tensor<3x?xf32>
    %m = linalg.matmul ins(%r, %a : tensor<3x8xf32>, tensor<8x?xf32>) outs(%f : tensor<3x?xf32>) -> tensor<3x?xf32>
    moe.yield %m : tensor<3x?xf32>
  }
  return %0 : tensor<4x3x?xf32>
}
