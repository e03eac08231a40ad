// RUN: not moe-opt %s --moe-map-loops-to-gpu=block-size=0 2>&1 | FileCheck %s --check-prefix=BLOCK
// RUN: not moe-opt %s --moe-map-loops-to-gpu=max-blocks=0 2>&1 | FileCheck %s --check-prefix=MAX

// BLOCK: error: moe-map-loops-to-gpu: block-size must be in [1, 1024], got 0
// MAX: error: moe-map-loops-to-gpu: max-blocks must be positive, got 0
func.func @f() {
  return
}
