// RUN: moe-opt %s --moe-map-loops-to-gpu --split-input-file --verify-diagnostics

func.func @reduction(%a: memref<?xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f0 = arith.constant 0.0 : f32
  %t = memref.dim %a, %c0 : memref<?xf32>
  // expected-error @+1 {{cannot be mapped to the GPU: the host would need a value that only the device can compute}}
  %sum = scf.parallel (%i) = (%c0) to (%t) step (%c1) init (%f0) -> f32 {
    %v = memref.load %a[%i] : memref<?xf32>
    scf.reduce(%v : f32) {
    ^bb0(%x: f32, %y: f32):
      %s = arith.addf %x, %y : f32
      scf.reduce.return %s : f32
    }
  }
  // expected-note @+1 {{needed here}}
  return %sum : f32
}

// -----

func.func @sized_inside(%a: memref<?xindex>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %t = memref.dim %a, %c0 : memref<?xindex>
  scf.parallel (%i) = (%c0) to (%t) step (%c1) {
    %n = memref.load %a[%i] : memref<?xindex>
    // expected-error @+1 {{'memref.alloc' op cannot be mapped to the GPU: its size is computed inside the loop; only sizes known before the loop can be preallocated}}
    %tmp = memref.alloc(%n) : memref<?xf32>
    scf.parallel (%j) = (%c0) to (%n) step (%c1) {
      %f = arith.constant 0.0 : f32
      memref.store %f, %tmp[%j] : memref<?xf32>
    }
  }
  return
}

// -----

func.func @host_needs_device_value(%a: memref<?xindex>) -> memref<?xf32> {
  %c0 = arith.constant 0 : index
  // expected-error @+1 {{'memref.load' op cannot be mapped to the GPU: the host would need a value that only the device can compute}}
  %n = memref.load %a[%c0] : memref<?xindex>
  // expected-note @+1 {{needed here}}
  %m = memref.alloc(%n) : memref<?xf32>
  return %m : memref<?xf32>
}

// -----

// Through arithmetic on the device (what is left of a loop with one
// iteration), still a value only the device has.
func.func @host_needs_computed_device_value(%a: memref<?xindex>) -> memref<?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = memref.load %a[%c0] : memref<?xindex>
  // expected-error @+1 {{'arith.addi' op cannot be mapped to the GPU: the host would need a value that only the device can compute}}
  %m = arith.addi %n, %c1 : index
  memref.store %m, %a[%c1] : memref<?xindex>
  // expected-note @+1 {{needed here}}
  %b = memref.alloc(%m) : memref<?xf32>
  return %b : memref<?xf32>
}

// -----

func.func @thread_level_alloc(%a: memref<?x4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %t = memref.dim %a, %c0 : memref<?x4xf32>
  scf.parallel (%i) = (%c0) to (%t) step (%c1) {
    scf.parallel (%j) = (%c0) to (%c4) step (%c1) {
      // expected-error @+1 {{'memref.alloca' op cannot be mapped to the GPU: an allocation inside a loop that is spread over threads; allocate it outside the loop}}
      %tmp = memref.alloca() : memref<4xf32>
      %v = memref.load %tmp[%j] : memref<4xf32>
      memref.store %v, %a[%i, %j] : memref<?x4xf32>
    }
  }
  return
}
