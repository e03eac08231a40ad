// RUN: moe-opt %s --pass-pipeline='builtin.module(moe-cpu-pipeline{threads=1 target-cpu=haswell})' | FileCheck %s
// RUN: moe-opt %s --pass-pipeline='builtin.module(moe-cpu-pipeline{threads=1 target-cpu=skylake-avx512})' \
// RUN:   | FileCheck %s --check-prefix=AVX512
// RUN: moe-opt %s --pass-pipeline='builtin.module(moe-cpu-pipeline{vectorize=false})' | FileCheck %s --check-prefix=SCALAR
// RUN: moe-opt %s --pass-pipeline='builtin.module(moe-cpu-pipeline{fused=false})' | FileCheck %s --check-prefix=SCALAR
// RUN: moe-opt %s --pass-pipeline='builtin.module(moe-cpu-pipeline{threads=2 target-cpu=haswell})' \
// RUN:   | FileCheck %s --check-prefix=THREADS
// RUN: moe-opt %s --pass-pipeline='builtin.module(moe-cpu-pipeline{threads=1 target-cpu=skylake-avx512 pack-weights=true})' \
// RUN:   | FileCheck %s --check-prefix=PACKED
// RUN: not moe-opt %s --pass-pipeline='builtin.module(moe-cpu-pipeline{target-cpu=pentium-z})' 2>&1 \
// RUN:   | FileCheck %s --check-prefix=CPU

// On the fused path, the expert tile's contraction [R, 32] x [32, 32] (R:
// 16 row blocks of the kernel, 96 rows on AVX2, 64 on AVX-512) is tiled to
// the target's register blocks and becomes FMAs on full vector
// registers whose accumulators stay in registers across the reduction; the
// reference path and vectorize=false keep scalar loops. The reduction loop
// carries the accumulators as block arguments (they are not stored and
// reloaded at every step, although the scatter reads the output buffer
// afterwards).
// AVX2 (haswell): 6 x 16 blocks, 12 ymm accumulators.
// CHECK:       ^bb{{[0-9]+}}({{.*}}: !llvm.array<6 x vector<16xf32>>
// CHECK:       llvm.intr.fmuladd({{.*}}) : (vector<16xf32>, vector<16xf32>, vector<16xf32>) -> vector<16xf32>
// AVX-512 (skylake-avx512): the 32 columns in one 4 x 32 block, 8 zmm
// accumulators (its 4 x 64 kernel needs 64 columns).
// AVX512:      ^bb{{[0-9]+}}({{.*}}: !llvm.array<4 x vector<32xf32>>
// AVX512:      llvm.intr.fmuladd({{.*}}) : (vector<32xf32>, vector<32xf32>, vector<32xf32>) -> vector<32xf32>
// SCALAR-NOT:  vector<16xf32>
// With threads=2 the 32 columns are two 16-column panels, one per OpenMP
// thread.
// THREADS:     omp.parallel num_threads
// Panels go to whichever thread is free (moe-openmp-dynamic-schedule).
// THREADS:     omp.wsloop schedule(dynamic)
// THREADS:     llvm.intr.fmuladd
// The packed entry: the 32 columns are one 64-column panel, 4 x 64 register
// blocks whose accumulators stay in registers across the reduction (the
// panel accumulates in a buffer without views, so the transfers hoist).
// PACKED-LABEL: llvm.func @layer_packed(
// PACKED:         ^bb{{[0-9]+}}({{.*}}: !llvm.array<4 x vector<64xf32>>)
// PACKED:         llvm.intr.fmuladd({{.*}}) : (vector<64xf32>, vector<64xf32>, vector<64xf32>) -> vector<64xf32>
// PACKED-LABEL: llvm.func @_mlir_ciface_layer_packed(
// CPU: error: invalid options for 'moe-cpu-pipeline': unknown target-cpu 'pentium-z'

func.func @layer(%x: tensor<?x32xf32>, %ids: tensor<4x?xi32>, %g: tensor<4x?xf32>, %w: tensor<4x32x32xf32>,
                 %acc: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %xe = moe.dispatch %x indices(%ids : tensor<4x?xi32>) : tensor<?x32xf32> -> tensor<4x?x32xf32>
  %ye = moe.expert %xe weights(%w : tensor<4x32x32xf32>) : tensor<4x?x32xf32> -> tensor<4x?x32xf32> {
  ^bb0(%r: tensor<?x32xf32>, %a: tensor<32x32xf32>):
    %c0 = arith.constant 0 : index
    %z = arith.constant 0.0 : f32
    %n = tensor.dim %r, %c0 : tensor<?x32xf32>
    %e = tensor.empty(%n) : tensor<?x32xf32>
    %f = linalg.fill ins(%z : f32) outs(%e : tensor<?x32xf32>) -> tensor<?x32xf32>
    %m = linalg.matmul ins(%r, %a : tensor<?x32xf32>, tensor<32x32xf32>) outs(%f : tensor<?x32xf32>) -> tensor<?x32xf32>
    moe.yield %m : tensor<?x32xf32>
  }
  %y = moe.combine %ye indices(%ids : tensor<4x?xi32>) weights(%g : tensor<4x?xf32>) into %acc
      : tensor<4x?x32xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}
