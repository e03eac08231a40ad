// RUN: moe-opt %s --moe-map-loops-to-gpu="block-size=128 max-blocks=4 shared-memory-bytes=0" --split-input-file | FileCheck %s

// A parallel loop with nothing parallel inside: one thread per iteration,
// the last dimension fastest, a guard for the partial last block.

// CHECK-LABEL: func.func @flat
// CHECK-SAME:    (%[[A:.+]]: memref<?x8xf32>, %[[B:.+]]: memref<?x8xf32>)
// CHECK:         %[[T:.+]] = memref.dim %[[A]]
// CHECK:         %[[BLOCKS:.+]] = arith.ceildivui %[[TOTAL:.+]], %c128
// CHECK:         gpu.launch blocks(%[[BX:.+]], %{{.+}}, %{{.+}}) in (%{{.+}} = %[[BLOCKS]], %{{.+}} = %c1{{.*}}, %{{.+}} = %c1{{.*}}) threads(%[[TX:.+]], %{{.+}}, %{{.+}}) in (%[[BS:.+]] = %c128
// CHECK:             %[[LIN:.+]] = arith.addi %{{.+}}, %[[TX]]
// CHECK:             %[[IN:.+]] = arith.cmpi ult, %[[LIN]], %[[TOTAL]]
// CHECK:             scf.if %[[IN]]
// CHECK:               arith.remui %[[LIN]]
// CHECK:               arith.divui %[[LIN]]
// CHECK:               memref.load %[[A]]
// CHECK:               memref.store %{{.+}}, %[[B]]
// CHECK-NOT:         gpu.barrier
// CHECK:         return
func.func @flat(%a: memref<?x8xf32>, %b: memref<?x8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %t = memref.dim %a, %c0 : memref<?x8xf32>
  scf.parallel (%i, %j) = (%c0, %c0) to (%t, %c8) step (%c1, %c1) {
    %v = memref.load %a[%i, %j] : memref<?x8xf32>
    %w = arith.addf %v, %v : f32
    memref.store %w, %b[%i, %j] : memref<?x8xf32>
  }
  return
}

// -----

// Parallel loops in a parallel loop: blocks take the outer iterations in
// turn, inner loops are spread over the threads with a barrier after each,
// and (with no shared memory to spare) the tile's temporary is a per-block
// slice of one device buffer.

// CHECK-LABEL: func.func @tiles
// CHECK:         %[[NB:.+]] = arith.minui %{{.+}}, %c4
// CHECK:         %[[BYTES:.+]] = arith.muli %{{.+}}, %c256
// CHECK:         %[[SIZE:.+]] = arith.muli %[[BYTES]], %[[NB]]
// CHECK:         %[[SCRATCH:.+]] = gpu.alloc (%[[SIZE]]) : memref<?xi8>
// CHECK:         gpu.launch blocks(%[[BX:.+]], %{{.+}}, %{{.+}}) in (%[[GX:.+]] = %[[NB]]
// CHECK:           scf.for %[[IT:.+]] = %[[BX]] to %{{.+}} step %[[NB]]
// CHECK:             %[[SHIFT:.+]] = arith.muli %[[BX]], %[[BYTES]]
// CHECK:             %[[TMP:.+]] = memref.view %[[SCRATCH]][%[[SHIFT]]][] : memref<?xi8> to memref<16xf32>
// CHECK:             scf.for %{{.+}} = %{{.+}} to %{{.+}} step %c128 {
// CHECK:               memref.store %{{.+}}, %[[TMP]]
// CHECK:             gpu.barrier
// CHECK:             scf.for
// CHECK:               memref.load %[[TMP]]
// CHECK:             gpu.barrier
// CHECK:             arith.cmpi eq, %{{.+}}, %c0
// CHECK:             scf.if
// CHECK:               memref.store
// CHECK:             gpu.barrier
// CHECK-NEXT:      }
// CHECK:           gpu.terminator
// CHECK:         gpu.dealloc %[[SCRATCH]]
// CHECK:         return
func.func @tiles(%a: memref<?x16xf32>, %b: memref<?x16xf32>, %c: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %f0 = arith.constant 0.0 : f32
  %t = memref.dim %a, %c0 : memref<?x16xf32>
  scf.parallel (%i) = (%c0) to (%t) step (%c1) {
    %tmp = memref.alloc() : memref<16xf32>
    scf.parallel (%j) = (%c0) to (%c16) step (%c1) {
      %v = memref.load %a[%i, %j] : memref<?x16xf32>
      memref.store %v, %tmp[%j] : memref<16xf32>
    }
    scf.parallel (%j) = (%c0) to (%c16) step (%c1) {
      %k = arith.subi %c16, %j : index
      %k1 = arith.subi %k, %c1 : index
      %v = memref.load %tmp[%k1] : memref<16xf32>
      memref.store %v, %b[%i, %j] : memref<?x16xf32>
    }
    memref.store %f0, %c[%i] : memref<?xf32>
    memref.dealloc %tmp : memref<16xf32>
  }
  return
}

// -----

// A sequential loop runs in a one-block launch on thread 0; host
// allocations move to the device and those not returned are freed.

// CHECK-LABEL: func.func @sequential
// CHECK:         %[[KEEP:.+]] = gpu.alloc () : memref<4xi32>
// CHECK:         %[[TEMP:.+]] = gpu.alloc () : memref<4xi32>
// CHECK:         gpu.launch blocks({{.+}}) in (%{{.+}} = %c1
// CHECK:           scf.if
// CHECK:             scf.for
// CHECK:           gpu.barrier
// CHECK:         gpu.launch
// CHECK:         gpu.dealloc %[[TEMP]]
// CHECK-NOT:     gpu.dealloc %[[KEEP]]
// CHECK:         return %[[KEEP]]
func.func @sequential(%n: index) -> memref<4xi32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %keep = memref.alloc() : memref<4xi32>
  %temp = memref.alloc() : memref<4xi32>
  scf.for %i = %c0 to %c4 step %c1 {
    %v = arith.index_cast %i : index to i32
    memref.store %v, %temp[%i] : memref<4xi32>
  }
  memref.copy %temp, %keep : memref<4xi32> to memref<4xi32>
  return %keep : memref<4xi32>
}

// -----

// A load only device code uses moves into that code; host drivers marked
// moe.host stay as they are.

// CHECK-LABEL: func.func @sunk_load
// CHECK-NOT:     memref.load
// CHECK:         gpu.launch
// CHECK:           memref.load
// CHECK:           memref.load %{{.+}}[%c0{{.*}}] : memref<1xf32>
// CHECK:           arith.mulf
func.func @sunk_load(%s: memref<1xf32>, %a: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %scale = memref.load %s[%c0] : memref<1xf32>
  %t = memref.dim %a, %c0 : memref<?xf32>
  scf.parallel (%i) = (%c0) to (%t) step (%c1) {
    %v = memref.load %a[%i] : memref<?xf32>
    %w = arith.mulf %v, %scale : f32
    memref.store %w, %a[%i] : memref<?xf32>
  }
  return
}

// CHECK-LABEL: func.func @driver
// CHECK-NOT:     gpu.launch
// CHECK:         memref.alloc
// CHECK:         memref.store
func.func @driver() -> memref<1xf32> attributes {moe.host} {
  %c0 = arith.constant 0 : index
  %f = arith.constant 1.0 : f32
  %m = memref.alloc() : memref<1xf32>
  memref.store %f, %m[%c0] : memref<1xf32>
  return %m : memref<1xf32>
}

// -----

// A loop of warp-level contractions (moe-gpu-tensor-core-matmuls) is spread
// over warps: warp tid / 32 takes iterations warp, warp + warps, ...

#mk = affine_map<(m, n, k) -> (m, k)>
#kn = affine_map<(m, n, k) -> (k, n)>
#mn = affine_map<(m, n, k) -> (m, n)>
// CHECK-LABEL: func.func @warp_tiles
// CHECK:         gpu.launch blocks({{.+}}) threads(%[[TX:[^,]+]], {{.+}}) in ({{.+}})
// CHECK:           %[[WARP:.+]] = arith.divui %[[TX]], %c32
// CHECK:           %[[WARPS:.+]] = arith.maxui %{{.+}}, %c1
// CHECK:           scf.for %{{.+}} = %[[WARP]] to %{{.+}} step %[[WARPS]]
// CHECK:             vector.contract
// CHECK:           gpu.barrier
func.func @warp_tiles(%a: memref<?x16x16xf32>, %b: memref<16x32xf32>, %c: memref<?x16x32xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c32 = arith.constant 32 : index
  %f0 = arith.constant 0.0 : f32
  %e = memref.dim %a, %c0 : memref<?x16x16xf32>
  scf.parallel (%i) = (%c0) to (%e) step (%c1) {
    scf.parallel (%n0) = (%c0) to (%c32) step (%c8) {
      %va = vector.transfer_read %a[%i, %c0, %c0], %f0 {in_bounds = [true, true]} : memref<?x16x16xf32>, vector<16x16xf32>
      %vb = vector.transfer_read %b[%c0, %n0], %f0 {in_bounds = [true, true]} : memref<16x32xf32>, vector<16x8xf32>
      %vc = vector.transfer_read %c[%i, %c0, %n0], %f0 {in_bounds = [true, true]} : memref<?x16x32xf32>, vector<16x8xf32>
      %r = vector.contract {indexing_maps = [#mk, #kn, #mn], iterator_types = ["parallel", "parallel", "reduction"], kind = #vector.kind<add>} %va, %vb, %vc : vector<16x16xf32>, vector<16x8xf32> into vector<16x8xf32>
      vector.transfer_write %r, %c[%i, %c0, %n0] {in_bounds = [true, true]} : vector<16x8xf32>, memref<?x16x32xf32>
    }
  }
  return
}
