// RUN: moe-opt %s --moe-map-loops-to-gpu="block-size=64 shared-memory-bytes=256" | FileCheck %s

// Static temporaries of a block become its shared memory while they fit the
// budget (here the first, 64 floats = 256 bytes); the rest go to per-block
// slices of a device buffer.

// CHECK-LABEL: func.func @tiles
// CHECK:         %[[SCRATCH:.+]] = gpu.alloc (%{{.+}}) : memref<?xi8>
// CHECK:         gpu.launch blocks({{.+}}) threads({{[^)]+}}) in (%{{[^)]+}} = %c64{{[_0-9]*}}, %{{[^,]+}}, %{{[^)]+}})
// CHECK-SAME:      workgroup(%[[WG:.+]] : memref<64xf32, #gpu.address_space<workgroup>>)
// CHECK:           %[[A:.+]] = memref.memory_space_cast %[[WG]] : memref<64xf32, #gpu.address_space<workgroup>> to memref<64xf32>
// CHECK:           %[[B:.+]] = memref.view %[[SCRATCH]]
// CHECK:           memref.store %{{.+}}, %[[A]]
// CHECK:           gpu.barrier
// CHECK:           memref.load %[[A]]
// CHECK:           memref.store %{{.+}}, %[[B]]
// CHECK:           gpu.barrier
// CHECK:         gpu.dealloc %[[SCRATCH]]
func.func @tiles(%a: memref<?x64xf32>, %b: memref<?x64xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %t = memref.dim %a, %c0 : memref<?x64xf32>
  scf.parallel (%i) = (%c0) to (%t) step (%c1) {
    %first = memref.alloc() : memref<64xf32>
    %second = memref.alloc() : memref<64xf32>
    scf.parallel (%j) = (%c0) to (%c64) step (%c1) {
      %v = memref.load %a[%i, %j] : memref<?x64xf32>
      memref.store %v, %first[%j] : memref<64xf32>
    }
    scf.parallel (%j) = (%c0) to (%c64) step (%c1) {
      %v = memref.load %first[%j] : memref<64xf32>
      memref.store %v, %second[%j] : memref<64xf32>
    }
    scf.parallel (%j) = (%c0) to (%c64) step (%c1) {
      %v = memref.load %second[%j] : memref<64xf32>
      memref.store %v, %b[%i, %j] : memref<?x64xf32>
    }
  }
  return
}
