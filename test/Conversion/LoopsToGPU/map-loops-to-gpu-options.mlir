// RUN: not moe-opt %s --moe-map-loops-to-gpu=block-size=0 2>&1 | FileCheck %s --check-prefix=BLOCK
// RUN: not moe-opt %s --moe-map-loops-to-gpu=max-blocks=0 2>&1 | FileCheck %s --check-prefix=MAX
// Warp-level ops need blocks of whole warps (@f, without them, maps).
// RUN: not moe-opt %s --moe-map-loops-to-gpu=block-size=48 2>&1 | FileCheck %s --check-prefix=WARP

// BLOCK: error: moe-map-loops-to-gpu: block-size must be in [1, 1024], got 0
// MAX: error: moe-map-loops-to-gpu: max-blocks must be positive, got 0
// WARP: :[[@LINE+6]]:1: error: 'func.func' op cannot be mapped to the GPU with block-size=48: it has warp-level ops (tensor-core tiles, lane ids, shuffles), which need whole warps; use a multiple of 32
// WARP-NOT: error
func.func @f() {
  return
}

func.func @lanes(%out: memref<?xindex>) {
  %c0 = arith.constant 0 : index
  %lane = gpu.lane_id
  memref.store %lane, %out[%c0] : memref<?xindex>
  return
}
