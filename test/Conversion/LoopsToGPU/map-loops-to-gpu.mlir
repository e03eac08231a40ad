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

// -----

// The same for NVVM's mma (the bf16 tiles): its lanes hold one tile's
// fragments, so the loop goes to warps, not to threads.

// CHECK-LABEL: func.func @nvvm_warp_tiles
// CHECK:         gpu.launch blocks({{.+}}) threads(%[[TX:[^,]+]], {{.+}}) in ({{.+}})
// CHECK:           %[[WARP:.+]] = arith.divui %[[TX]], %c32
// CHECK:           %[[WARPS:.+]] = arith.maxui %{{.+}}, %c1
// CHECK:           scf.for %{{.+}} = %[[WARP]] to %{{.+}} step %[[WARPS]]
// CHECK:             gpu.lane_id
// CHECK:             nvvm.mma.sync
// CHECK:           gpu.barrier
func.func @nvvm_warp_tiles(%a: memref<?x4xi32>, %b: memref<2xi32>, %c: memref<?x64x2xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c32 = arith.constant 32 : index
  %e = memref.dim %a, %c0 : memref<?x4xi32>
  scf.parallel (%i) = (%c0) to (%e) step (%c1) {
    scf.parallel (%n0) = (%c0) to (%c32) step (%c8) {
      %lane = gpu.lane_id
      %row = arith.addi %n0, %lane : index
      %a0 = memref.load %a[%i, %c0] : memref<?x4xi32>
      %a1 = memref.load %a[%i, %c1] : memref<?x4xi32>
      %b0 = memref.load %b[%c0] : memref<2xi32>
      %b1 = memref.load %b[%c1] : memref<2xi32>
      %z = arith.constant 0.0 : f32
      %d = nvvm.mma.sync A[%a0, %a1, %a0, %a1] B[%b0, %b1] C[%z, %z, %z, %z] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
      %d0 = llvm.extractvalue %d[0] : !llvm.struct<(f32, f32, f32, f32)>
      memref.store %d0, %c[%i, %row, %c0] : memref<?x64x2xf32>
    }
  }
  return
}

// -----

// A single 16x8 tile: canonicalization folds its loop, and what is left in
// the block's work are the lanes' fragments. Their writes go to the 32 lanes
// of warp 0 (thread 0 alone would store one lane's part of the tile); writes
// of values that do not depend on the lane stay on thread 0.

// CHECK-LABEL: func.func @single_tile
// CHECK:         gpu.launch blocks({{.+}}) threads(%[[TX:[^,]+]], {{.+}}) in ({{.+}})
// CHECK:           %[[FIRST:.+]] = arith.cmpi eq, %[[TX]], %c0
// CHECK:           scf.if %[[FIRST]] {
// CHECK-NEXT:        memref.store %{{.+}}, %{{.+}}[%{{.+}}, %c0, %c1]
// CHECK:           gpu.barrier
// CHECK:           gpu.lane_id
// CHECK:           nvvm.mma.sync
// CHECK:           %[[WARP0:.+]] = arith.cmpi ult, %[[TX]], %c32
// CHECK:           scf.if %[[WARP0]] {
// CHECK-NEXT:        memref.store
// CHECK:           gpu.barrier
func.func @single_tile(%a: memref<?x4xi32>, %b: memref<2xi32>, %c: memref<?x64x2xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %one = arith.constant 1.0 : f32
  %e = memref.dim %a, %c0 : memref<?x4xi32>
  scf.parallel (%i) = (%c0) to (%e) step (%c1) {
    memref.store %one, %c[%i, %c0, %c1] : memref<?x64x2xf32>
    %lane = gpu.lane_id
    %a0 = memref.load %a[%i, %c0] : memref<?x4xi32>
    %a1 = memref.load %a[%i, %c1] : memref<?x4xi32>
    %b0 = memref.load %b[%c0] : memref<2xi32>
    %b1 = memref.load %b[%c1] : memref<2xi32>
    %z = arith.constant 0.0 : f32
    %d = nvvm.mma.sync A[%a0, %a1, %a0, %a1] B[%b0, %b1] C[%z, %z, %z, %z] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
    %d0 = llvm.extractvalue %d[0] : !llvm.struct<(f32, f32, f32, f32)>
    memref.store %d0, %c[%i, %lane, %c0] : memref<?x64x2xf32>
  }
  return
}

// -----

// What the canonicalizer leaves of a parallel loop with one iteration (a
// single token, a single expert): loads, arithmetic on the loaded values
// and stores at the top level, and a sequential loop whose result is
// stored. Each run of device ops that pass values to each other becomes one
// launch; a host allocation in the middle of a run moves before it and stays
// a host buffer, and the loop in between, which uses no value of the run, is
// a launch of its own.

// CHECK-LABEL: func.func @one_iteration
// CHECK-SAME:    (%[[A:.+]]: memref<4xf32>, %[[B:.+]]: memref<4xf32>)
// CHECK-NOT:     memref.load
// CHECK:         %[[TMP:.+]] = gpu.alloc () : memref<4xf32>
// CHECK-NOT:     memref.load
// CHECK:         gpu.launch
// CHECK:           scf.if
// CHECK:             %[[X:.+]] = memref.load %[[A]][%c0{{.*}}]
// CHECK:             %[[Y:.+]] = arith.mulf %[[X]], %[[X]]
// CHECK:             memref.store %[[Y]], %[[TMP]][%c0{{.*}}]
// CHECK:             %[[Z:.+]] = arith.addf %[[X]], %[[Y]]
// CHECK:             memref.store %[[Z]], %[[B]][%c1{{.*}}]
// CHECK:           gpu.terminator
// CHECK:         gpu.launch
// CHECK:           memref.store %{{.+}}, %[[A]]
// CHECK:           gpu.terminator
// CHECK-NOT:     memref.load
// CHECK:         gpu.launch
// CHECK:           scf.if
// CHECK:             %[[SUM:.+]] = scf.for {{.+}} -> (f32)
// CHECK:             memref.store %[[SUM]], %[[B]][%c0{{.*}}]
// CHECK:           gpu.terminator
// CHECK:         gpu.dealloc %[[TMP]]
// CHECK-NEXT:    return
func.func @one_iteration(%a: memref<4xf32>, %b: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %f0 = arith.constant 0.0 : f32
  %x = memref.load %a[%c0] : memref<4xf32>
  %y = arith.mulf %x, %x : f32
  %tmp = memref.alloc() : memref<4xf32>
  memref.store %y, %tmp[%c0] : memref<4xf32>
  %z = arith.addf %x, %y : f32
  memref.store %z, %b[%c1] : memref<4xf32>
  scf.parallel (%i) = (%c0) to (%c4) step (%c1) {
    memref.store %f0, %a[%i] : memref<4xf32>
  }
  %sum = scf.for %i = %c0 to %c4 step %c1 iter_args(%acc = %f0) -> (f32) {
    %v = memref.load %tmp[%i] : memref<4xf32>
    %s = arith.addf %acc, %v : f32
    scf.yield %s : f32
  }
  memref.store %sum, %b[%c0] : memref<4xf32>
  return
}
