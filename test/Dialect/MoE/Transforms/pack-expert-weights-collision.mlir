// RUN: not moe-opt %s --moe-pack-expert-weights 2>&1 | FileCheck %s

// The names it would add are taken: an error, not a second symbol.

// CHECK: error: moe-pack-expert-weights: cannot add 'taken_packed': the module already has a symbol of that name
func.func @taken(%x: tensor<4x8x64xf32>, %w: tensor<4x64x64xf32>) -> tensor<4x8x64xf32> {
  %y = moe.expert %x weights(%w : tensor<4x64x64xf32>) : tensor<4x8x64xf32> -> tensor<4x8x64xf32> {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x64xf32>):
    %e = tensor.empty() : tensor<8x64xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x64xf32>) outs(%e : tensor<8x64xf32>) -> tensor<8x64xf32>
    moe.yield %m : tensor<8x64xf32>
  }
  return %y : tensor<4x8x64xf32>
}
func.func private @taken_packed()
