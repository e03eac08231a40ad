// RUN: moe-opt %s --moe-gpu-emulate-launches --split-input-file --verify-diagnostics | FileCheck %s

// Blocks, then threads, as nested loops; device memory becomes host memory.

// CHECK-LABEL: func.func @launch
// CHECK:         %[[BUF:.+]] = memref.alloc(%{{.+}}) : memref<?xf32>
// CHECK:         scf.for %[[BZ:.+]] = %c0 to %c1
// CHECK:           scf.for %[[BY:.+]] = %c0 to %c1
// CHECK:             scf.for %[[BX:.+]] = %c0 to %[[N:.+]] step
// CHECK:               scf.for %[[TZ:.+]] = %c0 to %c1
// CHECK:                 scf.for %[[TY:.+]] = %c0 to %c1
// CHECK:                   scf.for %[[TX:.+]] = %c0 to %c4
// CHECK:                     %[[I:.+]] = arith.addi %{{.+}}, %[[TX]]
// CHECK:                     memref.store %{{.+}}, %[[BUF]][%[[I]]]
// CHECK-NOT:     gpu.
// CHECK:         memref.dealloc %[[BUF]]
func.func @launch(%n: index) {
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %f = arith.constant 1.0 : f32
  %size = arith.muli %n, %c4 : index
  %buf = gpu.alloc (%size) : memref<?xf32>
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c4, %sy = %c1, %sz = %c1) {
    %base = arith.muli %bx, %sx : index
    %i = arith.addi %base, %tx : index
    memref.store %f, %buf[%i] : memref<?xf32>
    gpu.terminator
  }
  gpu.dealloc %buf : memref<?xf32>
  return
}

// -----

// With one thread per block, barriers order nothing and go away.

// CHECK-LABEL: func.func @one_thread_barrier
// CHECK-NOT:     gpu.barrier
func.func @one_thread_barrier(%m: memref<4xf32>) {
  %c1 = arith.constant 1 : index
  %c0 = arith.constant 0 : index
  %f = arith.constant 1.0 : f32
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    memref.store %f, %m[%c0] : memref<4xf32>
    gpu.barrier
    gpu.terminator
  }
  return
}

// -----

func.func @barrier_threads(%m: memref<4xf32>) {
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %f = arith.constant 1.0 : f32
  // expected-error @+1 {{'gpu.launch' op cannot be emulated: it has barriers and more than one thread per block; map the loops with block-size=1}}
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c4, %sy = %c1, %sz = %c1) {
    memref.store %f, %m[%tx] : memref<4xf32>
    gpu.barrier
    gpu.terminator
  }
  return
}

// -----

// Shared memory becomes one host buffer the blocks reuse in turn.

// CHECK-LABEL: func.func @shared
// CHECK:         %[[BUF:.+]] = memref.alloc() : memref<4xf32>
// CHECK:         scf.for
// CHECK:           memref.store %{{.+}}, %[[BUF]]
// CHECK:         memref.dealloc %[[BUF]]
func.func @shared(%n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1)
             workgroup(%wg : memref<4xf32, #gpu.address_space<workgroup>>) {
    %m = memref.memory_space_cast %wg : memref<4xf32, #gpu.address_space<workgroup>> to memref<4xf32>
    memref.store %f, %m[%c0] : memref<4xf32>
    gpu.barrier
    gpu.terminator
  }
  return
}
