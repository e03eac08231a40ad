// RUN: moe-opt %s --split-input-file --moe-merge-sibling-foralls | FileCheck %s

// Two independent loops (each writes its own buffer, both read %x) become
// one over both iteration spaces; the constants between them move above.
// CHECK-LABEL: func.func @independent
// CHECK-DAG:     %[[C11:.+]] = arith.constant 11 : index
// CHECK-DAG:     %[[C7:.+]] = arith.constant 7 : index
// CHECK:         %[[N:.+]] = arith.addi %[[C11]], %[[C7]] : index
// CHECK:         scf.forall (%[[J:.+]]) in (%[[N]]) {
// CHECK:           %[[FIRST:.+]] = arith.cmpi ult, %[[J]], %[[C11]] : index
// CHECK:           scf.if %[[FIRST]] {
// CHECK:             memref.store %{{.+}}, %arg1[%[[J]]]
// CHECK:           } else {
// CHECK:             %[[I:.+]] = arith.subi %[[J]], %[[C11]] : index
// CHECK:             memref.store %{{.+}}, %arg2[%[[I]]]
// CHECK:           }
// CHECK-NOT:     scf.forall
func.func @independent(%x: memref<16xf32>, %a: memref<16xf32>, %b: memref<16xf32>) {
  scf.forall (%i) in (11) {
    %v = memref.load %x[%i] : memref<16xf32>
    memref.store %v, %a[%i] : memref<16xf32>
  }
  %c2 = arith.constant 2.0 : f32
  scf.forall (%i) in (7) {
    %v = memref.load %x[%i] : memref<16xf32>
    %w = arith.mulf %v, %c2 : f32
    memref.store %w, %b[%i] : memref<16xf32>
  }
  return
}

// -----

// Views of one buffer are that buffer: the second loop reads what the
// first writes (through a subview), so they stay apart.
// CHECK-LABEL: func.func @dependent
// CHECK:         scf.forall (%{{.+}}) in (8)
// CHECK:         scf.forall (%{{.+}}) in (8)
func.func @dependent(%x: memref<16xf32>, %a: memref<16xf32>) {
  %view = memref.subview %a[8] [8] [1] : memref<16xf32> to memref<8xf32, strided<[1], offset: 8>>
  scf.forall (%i) in (8) {
    %v = memref.load %x[%i] : memref<16xf32>
    memref.store %v, %view[%i] : memref<8xf32, strided<[1], offset: 8>>
  }
  scf.forall (%i) in (8) {
    %v = memref.load %a[%i] : memref<16xf32>
    memref.store %v, %x[%i] : memref<16xf32>
  }
  return
}

// -----

// An op with side effects between the loops keeps them apart; buffers
// allocated inside a body are its own (both bodies write one of theirs);
// dynamic bounds add up; a third loop joins the merged one.
// CHECK-LABEL: func.func @chain
// CHECK:         scf.forall (%{{.+}}) in (4)
// CHECK:         memref.store
// CHECK:         %[[N:.+]] = arith.addi %arg3, %arg3 : index
// CHECK:         %[[M:.+]] = arith.addi %[[N]], %c3 : index
// CHECK:         scf.forall (%[[J:.+]]) in (%[[M]]) {
// CHECK:           arith.cmpi ult, %[[J]], %[[N]] : index
// CHECK:           scf.if
// CHECK:             arith.cmpi ult, %{{.+}}, %arg3 : index
// CHECK:             scf.if
// CHECK:               memref.alloc
// CHECK-NOT:     scf.forall
func.func @chain(%x: memref<16xf32>, %a: memref<16xf32>, %b: memref<16xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %f0 = arith.constant 0.0 : f32
  scf.forall (%i) in (4) {
    %v = memref.load %x[%i] : memref<16xf32>
    memref.store %v, %a[%i] : memref<16xf32>
  }
  memref.store %f0, %b[%c0] : memref<16xf32>
  scf.forall (%i) in (%n) {
    %t = memref.alloc() : memref<1xf32>
    %v = memref.load %x[%i] : memref<16xf32>
    memref.store %v, %t[%c0] : memref<1xf32>
    %w = memref.load %t[%c0] : memref<1xf32>
    memref.store %w, %a[%i] : memref<16xf32>
    memref.dealloc %t : memref<1xf32>
  }
  scf.forall (%i) in (%n) {
    %t = memref.alloc() : memref<1xf32>
    %v = memref.load %x[%i] : memref<16xf32>
    memref.store %v, %t[%c0] : memref<1xf32>
    memref.dealloc %t : memref<1xf32>
  }
  scf.forall (%i) in (3) {
    %v = memref.load %x[%i] : memref<16xf32>
    memref.store %v, %b[%i] : memref<16xf32>
  }
  return
}

// -----

// Loops on tensors (shared outputs) and 2-D loops are not touched.
// CHECK-LABEL: func.func @untouched
// CHECK:         scf.forall (%{{.+}}) in (4) shared_outs
// CHECK:         scf.forall (%{{.+}}, %{{.+}}) in (2, 2)
func.func @untouched(%t: tensor<4xf32>, %x: memref<16xf32>, %a: memref<16xf32>) -> tensor<4xf32> {
  %r = scf.forall (%i) in (4) shared_outs(%o = %t) -> tensor<4xf32> {
    %s = tensor.extract_slice %o[%i] [1] [1] : tensor<4xf32> to tensor<1xf32>
    scf.forall.in_parallel {
      tensor.parallel_insert_slice %s into %o[%i] [1] [1] : tensor<1xf32> into tensor<4xf32>
    }
  }
  scf.forall (%i, %j) in (2, 2) {
    %v = memref.load %x[%i] : memref<16xf32>
    memref.store %v, %a[%j] : memref<16xf32>
  }
  return %r : tensor<4xf32>
}
