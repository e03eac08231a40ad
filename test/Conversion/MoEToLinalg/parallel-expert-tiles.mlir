// RUN: moe-opt %s -split-input-file -moe-parallel-expert-tiles | FileCheck %s
// RUN: not moe-opt %s -split-input-file -moe-parallel-expert-tiles=min-tiles=0 2>&1 \
// RUN:   | FileCheck %s --check-prefix=OPTION
// RUN: not moe-opt %s -split-input-file -moe-parallel-expert-tiles=min-tiles=1025 2>&1 \
// RUN:   | FileCheck %s --check-prefix=OPTION-MANY

// OPTION: error: moe-parallel-expert-tiles: min-tiles must be in [1, 1024], got 0
// OPTION-MANY: error: moe-parallel-expert-tiles: min-tiles must be in [1, 1024], got 1025

// A marked tile loop: a parallel copy when there are at least two tiles (its
// nested column-panel foralls run in turn), the sequential loop otherwise.
// CHECK-LABEL: func.func @tiles
// CHECK-SAME:      (%[[ACC:.+]]: memref<?x16xf32>, %[[N:.+]]: index)
// CHECK:         %[[SPAN:.+]] = arith.subi %[[N]], %c0
// CHECK:         %[[NEED:.+]] = arith.muli %c4, %c1
// CHECK:         %[[ENOUGH:.+]] = arith.cmpi sgt, %[[SPAN]], %[[NEED]]
// CHECK:         scf.if %[[ENOUGH]] {
// CHECK:           scf.parallel (%[[R0:.+]]) = (%c0) to (%[[N]]) step (%c4) {
// CHECK:             %[[TMP:.+]] = memref.alloc() : memref<4x16xf32>
// CHECK-NOT:         scf.forall
// CHECK:             scf.for %[[P:.+]] = %c0{{.*}} to %c2{{.*}} step %c1
// CHECK:               memref.store %{{.+}}, %[[TMP]]
// CHECK:             memref.store %{{.+}}, %[[ACC]][%[[R0]], %c0]
// CHECK:         } else {
// CHECK:           scf.for %{{.+}} = %c0 to %[[N]] step %c4 {
// CHECK:             scf.forall
// CHECK-NOT:     moe.independent_tiles
func.func @tiles(%acc: memref<?x16xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c4 = arith.constant 4 : index
  %f1 = arith.constant 1.0 : f32
  scf.for %r0 = %c0 to %n step %c4 {
    %tmp = memref.alloc() : memref<4x16xf32>
    scf.forall (%p) in (2) {
      memref.store %f1, %tmp[%c0, %p] : memref<4x16xf32>
    }
    memref.store %f1, %acc[%r0, %c0] : memref<?x16xf32>
    memref.dealloc %tmp : memref<4x16xf32>
  } {moe.independent_tiles}
  return
}

// -----

// A temporary allocated outside the loop and written by every tile (what a
// tensor.empty merged by CSE becomes) would be shared by the threads: the
// loop stays sequential.
// CHECK-LABEL: func.func @shared_temporary
// CHECK-NOT:     scf.parallel
// CHECK:         scf.for
// CHECK-NOT:     scf.parallel
func.func @shared_temporary(%acc: memref<?x16xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c4 = arith.constant 4 : index
  %f1 = arith.constant 1.0 : f32
  %tmp = memref.alloc() : memref<4x16xf32>
  scf.for %r0 = %c0 to %n step %c4 {
    memref.store %f1, %tmp[%c0, %c0] : memref<4x16xf32>
    %v = memref.load %tmp[%c0, %c0] : memref<4x16xf32>
    memref.store %v, %acc[%r0, %c0] : memref<?x16xf32>
  } {moe.independent_tiles}
  memref.dealloc %tmp : memref<4x16xf32>
  return
}

// -----

// Loops still on tensors (with results) and unmarked loops are left alone.
// CHECK-LABEL: func.func @not_bufferized
// CHECK-NOT:     scf.parallel
// CHECK:         scf.for {{.+}} iter_args
// CHECK-NOT:     scf.parallel
func.func @not_bufferized(%acc: tensor<?x16xf32>, %n: index) -> tensor<?x16xf32> {
  %c0 = arith.constant 0 : index
  %c4 = arith.constant 4 : index
  %f1 = arith.constant 1.0 : f32
  %r = scf.for %r0 = %c0 to %n step %c4 iter_args(%a = %acc) -> tensor<?x16xf32> {
    %b = tensor.insert %f1 into %a[%r0, %c0] : tensor<?x16xf32>
    scf.yield %b : tensor<?x16xf32>
  } {moe.independent_tiles}
  return %r : tensor<?x16xf32>
}

// CHECK-LABEL: func.func @unmarked
// CHECK-NOT:     scf.parallel
func.func @unmarked(%acc: memref<?x16xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c4 = arith.constant 4 : index
  %f1 = arith.constant 1.0 : f32
  scf.for %r0 = %c0 to %n step %c4 {
    memref.store %f1, %acc[%r0, %c0] : memref<?x16xf32>
  }
  return
}
