// RUN: moe-opt %s --moe-gpu-emulation-pipeline="tile-rows=4" | FileCheck %s

// The GPU mapping run on the host: no gpu op is left, the expert tiles are
// loops over blocks (one thread each), and the result is LLVM dialect with a
// C interface.

// CHECK-NOT:   gpu.
// CHECK-LABEL: llvm.func @layer(
// CHECK:         llvm.call @malloc
// CHECK-LABEL: llvm.func @_mlir_ciface_layer(
// CHECK-NOT:   gpu.
func.func @layer(%x: tensor<?x8xf32>, %logits: tensor<?x4xf32>,
                 %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) -> tensor<?x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c0 : tensor<?x8xf32>
  %ids, %gates, %offsets = moe.route #moe.token_choice<top_k = 2> %logits
      : tensor<?x4xf32> -> tensor<?xi32>, tensor<?xf32>, tensor<5xi32>
  %xg = moe.dispatch %x indices(%ids : tensor<?xi32>) : tensor<?x8xf32> -> tensor<?x8xf32>
  %yg = moe.expert %xg offsets(%offsets : tensor<5xi32>) weights(%w1, %w2 : tensor<4x8x16xf32>, tensor<4x16x8xf32>)
      : tensor<?x8xf32> -> tensor<?x8xf32> {
  ^bb0(%rows: tensor<?x8xf32>, %a: tensor<8x16xf32>, %b: tensor<16x8xf32>):
    %i0 = arith.constant 0 : index
    %f0 = arith.constant 0.0 : f32
    %n = tensor.dim %rows, %i0 : tensor<?x8xf32>
    %he = tensor.empty(%n) : tensor<?x16xf32>
    %h0 = linalg.fill ins(%f0 : f32) outs(%he : tensor<?x16xf32>) -> tensor<?x16xf32>
    %h = linalg.matmul ins(%rows, %a : tensor<?x8xf32>, tensor<8x16xf32>) outs(%h0 : tensor<?x16xf32>) -> tensor<?x16xf32>
    %oe = tensor.empty(%n) : tensor<?x8xf32>
    %o0 = linalg.fill ins(%f0 : f32) outs(%oe : tensor<?x8xf32>) -> tensor<?x8xf32>
    %o = linalg.matmul ins(%h, %b : tensor<?x16xf32>, tensor<16x8xf32>) outs(%o0 : tensor<?x8xf32>) -> tensor<?x8xf32>
    moe.yield %o : tensor<?x8xf32>
  }
  %ye = tensor.empty(%t) : tensor<?x8xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%ye : tensor<?x8xf32>) -> tensor<?x8xf32>
  %y = moe.combine %yg indices(%ids : tensor<?xi32>) weights(%gates : tensor<?xf32>) into %acc
      : tensor<?x8xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
