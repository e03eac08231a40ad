// RUN: moe-opt %s --moe-cpu-codegen="stage=vectorize target-cpu=skylake-avx512" \
// RUN:   --one-shot-bufferize=bufferize-function-boundaries \
// RUN:   --moe-cpu-codegen="stage=lower target-cpu=skylake-avx512" --canonicalize \
// RUN:   | FileCheck %s --check-prefix=AVX512
// RUN: moe-opt %s --moe-cpu-codegen="stage=vectorize target-cpu=haswell" \
// RUN:   --one-shot-bufferize=bufferize-function-boundaries \
// RUN:   --moe-cpu-codegen="stage=lower target-cpu=haswell" --canonicalize \
// RUN:   | FileCheck %s --check-prefix=AVX2
// RUN: moe-opt %s --moe-cpu-codegen="stage=vectorize target-cpu=x86-64" \
// RUN:   --one-shot-bufferize=bufferize-function-boundaries \
// RUN:   --moe-cpu-codegen="stage=lower target-cpu=x86-64" --canonicalize \
// RUN:   | FileCheck %s --check-prefix=SSE

// A packed panel's next KC block is prefetched into L2 (locality 2) while
// the row blocks compute on this one. The row blocks take turns: block r
// prefetches in the steps r, r + blocks, ... (a counter carried by the step
// loop, starting at r * K0 and moving by blocks * K0); in the others the
// addresses are the rows the step reads anyway (a select, no branch). The
// rows ahead are clamped to the panel's last step (512 - K0): never past it.
// AVX512-LABEL: func.func @active_blocks
// AVX512-SAME:    %[[PANEL:[^:]+]]: memref<512x64xf32
// AVX512:         %[[BLOCKS:.+]] = memref.dim %{{.+}}, %c0
// AVX512:         %[[STRIDE:.+]] = arith.muli %[[BLOCKS]], %c4
// AVX512:         scf.for %[[KC:.+]] = %c0 to %c512 step %c128
// AVX512:           scf.for %[[BLOCK:.+]] = %c0 to %[[BLOCKS]] step %c1
// AVX512:             %[[FIRST:.+]] = arith.muli %[[BLOCK]], %c4
// AVX512:             scf.for %[[K:.+]] = %c0 to %c128 step %c4 iter_args(%[[NEXT:.+]] = %[[FIRST]], %{{.+}}) -> (index, vector<4x64xf32>)
// AVX512:               vector.fma
// AVX512:               %[[MINE:.+]] = arith.cmpi eq, %[[K]], %[[NEXT]]
// AVX512:               %[[HERE:.+]] = arith.addi %[[KC]], %[[K]]
// AVX512:               %[[AHEAD:.+]] = arith.addi %[[HERE]], %c128
// AVX512:               %[[CLAMPED:.+]] = arith.minsi %[[AHEAD]], %c508
// AVX512:               %[[ROW:.+]] = arith.select %[[MINE]], %[[CLAMPED]], %[[HERE]]
// AVX512-COUNT-4:       memref.prefetch %[[PANEL]][%[[ROW]], %{{.+}}], read, locality<2>, data
// AVX512-COUNT-12:      memref.prefetch %[[PANEL]]
// AVX512-NOT:           memref.prefetch
// AVX512:               %[[LATER:.+]] = arith.addi %[[NEXT]], %[[STRIDE]]
// AVX512:               %[[MOVED:.+]] = arith.select %[[MINE]], %[[LATER]], %[[NEXT]]
// AVX512:               scf.yield %[[MOVED]]

// On AVX2 a 64-column panel (packed for AVX-512) is read in 16-column strips
// and not prefetched (it would be once per strip).
// AVX2-LABEL: func.func @active_blocks
// AVX2-NOT:     memref.prefetch
// AVX2-LABEL: func.func @few_rows

// Without FMA the table has no prefetch.
// SSE-LABEL: func.func @active_blocks
// SSE-NOT:     memref.prefetch
func.func @active_blocks(%a: tensor<?x512x4xf32>, %b: tensor<512x64xf32>, %c: tensor<?x4x64xf32>)
    -> tensor<?x4x64xf32> {
  %0 = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, k, m)>,
                                            affine_map<(b, m, n, k) -> (k, n)>,
                                            affine_map<(b, m, n, k) -> (b, m, n)>]
      {moe.expert_tile, moe.packed_panel = 64 : i64}
      ins(%a, %b : tensor<?x512x4xf32>, tensor<512x64xf32>)
      outs(%c : tensor<?x4x64xf32>) -> tensor<?x4x64xf32>
  return %0 : tensor<?x4x64xf32>
}

// A tile of few rows (2 blocks of 4: decode) reads its panel once, front to
// back, with no reduction block: the hardware prefetchers follow that
// stream, and nothing is prefetched.
// AVX512-LABEL: func.func @few_rows
// AVX512-NOT:     memref.prefetch
// AVX512:         return
func.func @few_rows(%a: tensor<2x512x4xf32>, %b: tensor<512x64xf32>, %c: tensor<2x4x64xf32>)
    -> tensor<2x4x64xf32> {
  %0 = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, k, m)>,
                                            affine_map<(b, m, n, k) -> (k, n)>,
                                            affine_map<(b, m, n, k) -> (b, m, n)>]
      {moe.expert_tile, moe.packed_panel = 64 : i64}
      ins(%a, %b : tensor<2x512x4xf32>, tensor<512x64xf32>)
      outs(%c : tensor<2x4x64xf32>) -> tensor<2x4x64xf32>
  return %0 : tensor<2x4x64xf32>
}

// A static count of blocks (16, Mixtral-like tiles of 64 rows): the turns
// move by 16 * K0 = 64.
// AVX512-LABEL: func.func @static_blocks
// AVX512:         scf.for %{{.+}} = %c0 to %c1024 step %c128
// AVX512:           scf.for %[[BLOCK16:.+]] = %c0 to %c16 step %c1
// AVX512:             %[[FIRST16:.+]] = arith.muli %[[BLOCK16]], %c4
// AVX512:             scf.for %{{.+}} iter_args(%[[NEXT16:.+]] = %[[FIRST16]], %{{.+}}) -> (index, vector<4x64xf32>)
// AVX512:               arith.minsi %{{.+}}, %c1020
// AVX512-COUNT-16:      memref.prefetch
// AVX512:               arith.addi %[[NEXT16]], %c64
func.func @static_blocks(%a: tensor<16x1024x4xf32>, %b: tensor<1024x64xf32>, %c: tensor<16x4x64xf32>)
    -> tensor<16x4x64xf32> {
  %0 = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, k, m)>,
                                            affine_map<(b, m, n, k) -> (k, n)>,
                                            affine_map<(b, m, n, k) -> (b, m, n)>]
      {moe.expert_tile, moe.packed_panel = 64 : i64}
      ins(%a, %b : tensor<16x1024x4xf32>, tensor<1024x64xf32>)
      outs(%c : tensor<16x4x64xf32>) -> tensor<16x4x64xf32>
  return %0 : tensor<16x4x64xf32>
}

// A 16-column panel (packed for AVX2): one cache line per row, KC = 256.
// AVX2-LABEL: func.func @narrow_panel
// AVX2:         scf.for %{{.+}} = %c0 to %c512 step %c256
// AVX2:           scf.for %{{.+}} = %c0 to %c256 step %c4 iter_args(%{{.+}}) -> (index, vector<4x16xf32>)
// AVX2:             arith.minsi %{{.+}}, %c508
// AVX2-COUNT-4:     memref.prefetch {{.+}} read, locality<2>, data
// AVX2-NOT:         memref.prefetch
// AVX2:             scf.yield
// SSE-LABEL: func.func @narrow_panel
// SSE-NOT:     memref.prefetch
func.func @narrow_panel(%a: tensor<?x512x4xf32>, %b: tensor<512x16xf32>, %c: tensor<?x4x16xf32>)
    -> tensor<?x4x16xf32> {
  %0 = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, k, m)>,
                                            affine_map<(b, m, n, k) -> (k, n)>,
                                            affine_map<(b, m, n, k) -> (b, m, n)>]
      {moe.expert_tile, moe.packed_panel = 16 : i64}
      ins(%a, %b : tensor<?x512x4xf32>, tensor<512x16xf32>)
      outs(%c : tensor<?x4x16xf32>) -> tensor<?x4x16xf32>
  return %0 : tensor<?x4x16xf32>
}
