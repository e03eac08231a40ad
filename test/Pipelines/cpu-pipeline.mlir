// RUN: moe-opt %s --moe-cpu-pipeline | FileCheck %s
// RUN: moe-opt %s --moe-cpu-pipeline | mlir-translate --mlir-to-llvmir | FileCheck %s --check-prefix=LLVMIR
// RUN: moe-opt %s --pass-pipeline='builtin.module(moe-cpu-pipeline{emit-c-interface=false})' | FileCheck %s --check-prefix=NOWRAP
// RUN: not moe-opt %s --pass-pipeline='builtin.module(func.func(moe-cpu-pipeline))' 2>&1 | FileCheck %s --check-prefix=ANCHOR
// RUN: not moe-opt %s --pass-pipeline='builtin.module(moe-cpu-pipeline{fast=1})' 2>&1 | FileCheck %s --check-prefix=OPTION
// RUN: not moe-opt %s --pass-pipeline='builtin.module(moe-cpu-pipeline{tile-rows=9223372036854775807})' 2>&1 | FileCheck %s --check-prefix=TILEROWS
// RUN: not moe-opt %s --pass-pipeline='builtin.module(moe-cpu-pipeline{tile-rows=0})' 2>&1 | FileCheck %s --check-prefix=TILEROWS0
// RUN: not moe-opt %s --pass-pipeline='builtin.module(moe-cpu-pipeline{threads=-1})' 2>&1 | FileCheck %s --check-prefix=THREADS
// RUN: not moe-opt %s --pass-pipeline='builtin.module(moe-cpu-pipeline{threads=100000})' 2>&1 | FileCheck %s --check-prefix=THREADS-MANY

// The whole layer goes to the LLVM dialect: nothing of moe, linalg, tensor,
// memref or scf remains, and the entry point gets a C interface wrapper.
// CHECK-NOT:     moe.
// CHECK-NOT:     linalg.
// CHECK-NOT:     tensor.
// CHECK-NOT:     scf.
// CHECK:         llvm.func @layer(
// CHECK:         llvm.func @_mlir_ciface_layer(%{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr) attributes {llvm.emit_c_interface}
// CHECK-NOT:     memref.

// LLVMIR:        define void @_mlir_ciface_layer(ptr %0, ptr %1, ptr %2, ptr %3, ptr %4)

// NOWRAP-NOT:    _mlir_ciface_

// ANCHOR:        error: 'moe-cpu-pipeline' runs on 'builtin.module', not on 'func.func'

// OPTION:        no such option fast

// Options out of range are errors when the pipeline is built.
// TILEROWS:      error: invalid options for 'moe-cpu-pipeline': tile-rows must be in [1, 4096], got 9223372036854775807
// TILEROWS0:     error: invalid options for 'moe-cpu-pipeline': tile-rows must be in [1, 4096], got 0
// THREADS:       error: invalid options for 'moe-cpu-pipeline': threads must be in [0, 1024] (0: every core), got -1
// THREADS-MANY:  error: invalid options for 'moe-cpu-pipeline': threads must be in [0, 1024] (0: every core), got 100000

func.func @layer(%x: tensor<?x8xf32>, %logits: tensor<?x4xf32>, %w1: tensor<4x8x16xf32>,
                 %w2: tensor<4x16x8xf32>) -> tensor<?x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c0 : tensor<?x8xf32>
  %ids, %gates = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.0> %logits
      : tensor<?x4xf32> -> tensor<4x?xi32>, tensor<4x?xf32>
  %xe = moe.dispatch %x indices(%ids : tensor<4x?xi32>) : tensor<?x8xf32> -> tensor<4x?x8xf32>
  %ye = moe.expert %xe weights(%w1, %w2 : tensor<4x8x16xf32>, tensor<4x16x8xf32>)
      : tensor<4x?x8xf32> -> tensor<4x?x8xf32> {
  ^bb0(%r: tensor<?x8xf32>, %a: tensor<8x16xf32>, %b: tensor<16x8xf32>):
    %i0 = arith.constant 0 : index
    %f0 = arith.constant 0.0 : f32
    %n = tensor.dim %r, %i0 : tensor<?x8xf32>
    %he = tensor.empty(%n) : tensor<?x16xf32>
    %h0 = linalg.fill ins(%f0 : f32) outs(%he : tensor<?x16xf32>) -> tensor<?x16xf32>
    %h = linalg.matmul ins(%r, %a : tensor<?x8xf32>, tensor<8x16xf32>) outs(%h0 : tensor<?x16xf32>) -> tensor<?x16xf32>
    %oe = tensor.empty(%n) : tensor<?x8xf32>
    %o0 = linalg.fill ins(%f0 : f32) outs(%oe : tensor<?x8xf32>) -> tensor<?x8xf32>
    %o = linalg.matmul ins(%h, %b : tensor<?x16xf32>, tensor<16x8xf32>) outs(%o0 : tensor<?x8xf32>) -> tensor<?x8xf32>
    moe.yield %o : tensor<?x8xf32>
  }
  %init = tensor.empty(%t) : tensor<?x8xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%init : tensor<?x8xf32>) -> tensor<?x8xf32>
  %y = moe.combine %ye indices(%ids : tensor<4x?xi32>) weights(%gates : tensor<4x?xf32>) into %acc
      : tensor<4x?x8xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
