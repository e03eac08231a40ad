// RUN: moe-opt %s --moe-cpu-codegen="stage=vectorize target-cpu=haswell" | FileCheck %s
// RUN: moe-opt %s --moe-cpu-codegen="stage=vectorize target-cpu=skylake-avx512" \
// RUN:   | FileCheck %s --check-prefix=AVX512
// RUN: moe-opt %s --moe-cpu-codegen="stage=vectorize threads=2 target-cpu=haswell" \
// RUN:   | FileCheck %s --check-prefix=THREADS
// RUN: moe-opt %s --moe-cpu-codegen="stage=vectorize target-cpu=haswell" \
// RUN:   --one-shot-bufferize=bufferize-function-boundaries \
// RUN:   --moe-cpu-codegen="stage=lower target-cpu=haswell" | FileCheck %s --check-prefix=LOWER
// RUN: not moe-opt %s --moe-cpu-codegen=threads=0 2>&1 | FileCheck %s --check-prefix=OPTION
// RUN: not moe-opt %s --moe-cpu-codegen=threads=2000 2>&1 | FileCheck %s --check-prefix=OPTION-MANY
// RUN: not moe-opt %s --moe-cpu-codegen=target-cpu=pentium-z 2>&1 | FileCheck %s --check-prefix=CPU

// OPTION: error: moe-cpu-codegen: threads must be in [1, 1024], got 0
// OPTION-MANY: error: moe-cpu-codegen: threads must be in [1, 1024], got 2000
// CPU: error: moe-cpu-codegen: unknown target-cpu 'pentium-z' (an x86-64 CPU name

// AVX2 + FMA (haswell): 6 x 16 register blocks (12 ymm accumulators), K
// blocked by 256, 4-deep steps; a row count that 6 does not divide takes
// the largest of 4, 2, 1 that does (64 rows: 4 x 16).
// CHECK-LABEL: func.func @tiles
// CHECK:         linalg.transpose ins(%{{.+}} : tensor<64x512xf32>)
// CHECK:         scf.for %{{.+}} = %c0 to %c512 step %c256
// CHECK:           scf.for %{{.+}} = %c0 to %c64 step %c16
// CHECK:             scf.for %{{.+}} = %c0 to %c64 step %c4
// CHECK:               scf.for %{{.+}} = %c0 to %c256 step %c4
// CHECK:                 vector.contract {{.+}} : vector<4x4xf32>, vector<4x16xf32> into vector<4x16xf32>
// CHECK:         linalg.transpose ins(%{{.+}} : tensor<96x512xf32>)
// CHECK:         scf.for %{{.+}} = %c0 to %c512 step %c256
// CHECK:           scf.for %{{.+}} = %c0 to %c64 step %c16
// CHECK:             scf.for %{{.+}} = %c0 to %c96 step %c6
// CHECK:               scf.for %{{.+}} = %c0 to %c256 step %c4
// CHECK:                 vector.contract {{.+}} : vector<4x6xf32>, vector<4x16xf32> into vector<6x16xf32>
// An 8-row tile streams its weights: K blocked by 8.
// CHECK:         linalg.transpose ins(%{{.+}} : tensor<8x512xf32>)
// CHECK:         scf.for %{{.+}} = %c0 to %c512 step %c8
// CHECK:               scf.for %{{.+}} = %c0 to %c8 step %c4
// CHECK:                 vector.contract
// Rows that do not fill 4-row blocks take 1-row blocks. An unmarked
// contraction (outside the expert tiles) is read where it lies, one
// reduction step at a time with the whole reduction in one pass: no
// transposed copy of its left-hand side.
// CHECK:         vector.contract {{.+}} : vector<4x1xf32>, vector<4x16xf32> into vector<1x16xf32>
// CHECK-NOT:     linalg.transpose
// CHECK:         scf.for %{{.+}} = %c0 to %c60 step %c6
// CHECK:           scf.for %{{.+}} = %c0 to %c512 step %c1
// CHECK:             vector.contract {{.+}} : vector<6x1xf32>, vector<1x16xf32> into vector<6x16xf32>
// CHECK-NOT:     linalg.matmul
// CHECK-NOT:     moe.expert_tile
// 48 columns: still 4 x 16 on AVX2; AVX-512 takes 4 x 48 (3 zmm per row),
// the widest multiple of 16 up to 64 that divides 48.
// CHECK-LABEL: func.func @wide
// CHECK:         vector.contract {{.+}} : vector<4x4xf32>, vector<4x16xf32> into vector<4x16xf32>
// A packed panel: no transpose (its left-hand side is blocked). Few rows
// read the panel once, front to back (KC = K); more rows block the
// reduction by KC outside the loop over row blocks (the panel's KC rows
// stay in L1 while every block reads them), then 4 x 16 register blocks.
// CHECK-LABEL: func.func @panel
// CHECK-NOT:     linalg.transpose
// CHECK:         scf.for %{{.+}} = %c0 to %c2 step %c1
// CHECK:           scf.for %{{.+}} = %c0 to %c64 step %c16
// CHECK:             scf.for %{{.+}} = %c0 to %c512 step %c4
// CHECK:               vector.contract {{.+}} : vector<4x4xf32>, vector<4x16xf32> into vector<4x16xf32>
// CHECK:         scf.for %{{.+}} = %c0 to %c512 step %c256
// CHECK:           scf.for %{{.+}} = %c0 to %c16 step %c1
// CHECK:             scf.for %{{.+}} = %c0 to %c64 step %c16
// CHECK:               scf.for %{{.+}} = %c0 to %c256 step %c4
// CHECK:                 vector.contract {{.+}} : vector<4x4xf32>, vector<4x16xf32> into vector<4x16xf32>

// AVX-512 (skylake-avx512): 6 x 64 blocks (24 zmm accumulators), K
// blocked by 128; 64 rows, which 6 does not divide, take 4 x 64 blocks.
// AVX512-LABEL: func.func @tiles
// AVX512:         scf.for %{{.+}} = %c0 to %c512 step %c128
// AVX512:           scf.for %{{.+}} = %c0 to %c64 step %c4
// AVX512:             scf.for %{{.+}} = %c0 to %c128 step %c4
// AVX512:               vector.contract {{.+}} : vector<4x4xf32>, vector<4x64xf32> into vector<4x64xf32>
// AVX512:         scf.for %{{.+}} = %c0 to %c512 step %c128
// AVX512:           scf.for %{{.+}} = %c0 to %c96 step %c6
// AVX512:             scf.for %{{.+}} = %c0 to %c128 step %c4
// AVX512:               vector.contract {{.+}} : vector<4x6xf32>, vector<4x64xf32> into vector<6x64xf32>
// AVX512-LABEL: func.func @wide
// AVX512:         vector.contract {{.+}} : vector<4x4xf32>, vector<4x48xf32> into vector<4x48xf32>
// AVX512-LABEL: func.func @panel
// AVX512:         scf.for %{{.+}} = %c0 to %c512 step %c4
// AVX512:           vector.contract {{.+}} : vector<4x4xf32>, vector<4x64xf32> into vector<4x64xf32>
// AVX512:         scf.for %{{.+}} = %c0 to %c512 step %c128
// AVX512:           scf.for %{{.+}} = %c0 to %c16 step %c1
// AVX512:             scf.for %{{.+}} = %c0 to %c128 step %c4
// AVX512:               vector.contract {{.+}} : vector<4x4xf32>, vector<4x64xf32> into vector<4x64xf32>

// Two threads: the 64 columns in two panels of 32; a packed panel is not
// split (the panels are the parallel loop).
// THREADS-LABEL: func.func @tiles
// THREADS:         scf.forall (%{{.+}}) = (0) to (64) step (32)
// THREADS:           scf.for %{{.+}} = %c0 to %c512 step %c256
// THREADS-LABEL: func.func @panel
// THREADS-NOT:     scf.forall

// On buffers: the 4 x 16 accumulator block is read before the reduction
// loop, carried through it, and written after it; the steps are FMAs of
// right-hand rows and left-hand elements read one by one (scalar loads,
// broadcast).
// LOWER-LABEL: func.func @tiles
// LOWER:         %[[C:.+]] = vector.transfer_read {{.+}} : memref<64x64xf32>, vector<4x16xf32>
// LOWER:         %[[SUM:.+]] = scf.for {{.+}} iter_args(%{{.+}} = %[[C]]) -> (vector<4x16xf32>)
// LOWER:           %[[AIK:.+]] = memref.load %{{.+}} : memref<512x64xf32>
// LOWER:           %[[BC:.+]] = vector.broadcast %[[AIK]] : f32 to vector<16xf32>
// LOWER:           vector.fma %[[BC]], {{.+}} : vector<16xf32>
// LOWER:         vector.transfer_write %[[SUM]]
func.func @tiles(%a: tensor<64x512xf32>, %b: tensor<512x64xf32>, %c: tensor<64x64xf32>,
                 %a8: tensor<8x512xf32>, %c8: tensor<8x64xf32>,
                 %a5: tensor<5x512xf32>, %c5: tensor<5x64xf32>,
                 %a96: tensor<96x512xf32>, %c96: tensor<96x64xf32>)
    -> (tensor<64x64xf32>, tensor<96x64xf32>, tensor<8x64xf32>, tensor<5x64xf32>,
        tensor<64x64xf32>) {
  %0 = linalg.matmul {moe.expert_tile} ins(%a, %b : tensor<64x512xf32>, tensor<512x64xf32>)
      outs(%c : tensor<64x64xf32>) -> tensor<64x64xf32>
  %4 = linalg.matmul {moe.expert_tile} ins(%a96, %b : tensor<96x512xf32>, tensor<512x64xf32>)
      outs(%c96 : tensor<96x64xf32>) -> tensor<96x64xf32>
  %1 = linalg.matmul {moe.expert_tile} ins(%a8, %b : tensor<8x512xf32>, tensor<512x64xf32>)
      outs(%c8 : tensor<8x64xf32>) -> tensor<8x64xf32>
  %2 = linalg.matmul {moe.expert_tile} ins(%a5, %b : tensor<5x512xf32>, tensor<512x64xf32>)
      outs(%c5 : tensor<5x64xf32>) -> tensor<5x64xf32>
  %3 = linalg.matmul ins(%a, %b : tensor<64x512xf32>, tensor<512x64xf32>)
      outs(%c : tensor<64x64xf32>) -> tensor<64x64xf32>
  return %0, %4, %1, %2, %3 : tensor<64x64xf32>, tensor<96x64xf32>, tensor<8x64xf32>,
                              tensor<5x64xf32>, tensor<64x64xf32>
}

func.func @wide(%a: tensor<64x512xf32>, %b: tensor<512x48xf32>, %c: tensor<64x48xf32>)
    -> tensor<64x48xf32> {
  %0 = linalg.matmul {moe.expert_tile} ins(%a, %b : tensor<64x512xf32>, tensor<512x48xf32>)
      outs(%c : tensor<64x48xf32>) -> tensor<64x48xf32>
  return %0 : tensor<64x48xf32>
}

// One column panel of a packed weight, as convert-moe-to-fused-linalg
// emits it: the left-hand side in blocks of 4 rows ([M / 4, K, 4]), the
// panel broadcast to every block.
func.func @panel(%a8: tensor<2x512x4xf32>, %a64: tensor<16x512x4xf32>, %b: tensor<512x64xf32>,
                 %c8: tensor<2x4x64xf32>, %c64: tensor<16x4x64xf32>)
    -> (tensor<2x4x64xf32>, tensor<16x4x64xf32>) {
  %0 = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, k, m)>,
                                            affine_map<(b, m, n, k) -> (k, n)>,
                                            affine_map<(b, m, n, k) -> (b, m, n)>]
      {moe.expert_tile, moe.packed_panel = 64 : i64}
      ins(%a8, %b : tensor<2x512x4xf32>, tensor<512x64xf32>)
      outs(%c8 : tensor<2x4x64xf32>) -> tensor<2x4x64xf32>
  %1 = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, k, m)>,
                                            affine_map<(b, m, n, k) -> (k, n)>,
                                            affine_map<(b, m, n, k) -> (b, m, n)>]
      {moe.expert_tile, moe.packed_panel = 64 : i64}
      ins(%a64, %b : tensor<16x512x4xf32>, tensor<512x64xf32>)
      outs(%c64 : tensor<16x4x64xf32>) -> tensor<16x4x64xf32>
  return %0, %1 : tensor<2x4x64xf32>, tensor<16x4x64xf32>
}

// The register blocks are f32 ones: a bf16 contraction keeps its loops
// (vectorized as it is, every element would be extended on its own), and
// loses its marker like every other.
// CHECK-LABEL: func.func @bf16
// CHECK-NOT:     vector.contract
// CHECK:         linalg.matmul ins(%{{.+}}, %{{.+}} : tensor<64x512xbf16>, tensor<512x64xbf16>)
// CHECK-NOT:     moe.expert_tile
// CHECK:         return
func.func @bf16(%a: tensor<64x512xbf16>, %b: tensor<512x64xbf16>, %c: tensor<64x64xbf16>)
    -> tensor<64x64xbf16> {
  %0 = linalg.matmul {moe.expert_tile} ins(%a, %b : tensor<64x512xbf16>, tensor<512x64xbf16>)
      outs(%c : tensor<64x64xbf16>) -> tensor<64x64xbf16>
  return %0 : tensor<64x64xbf16>
}

// The active row blocks of a tile (a dynamic count): the reduction is
// blocked all the same, the loop over blocks runs to the count.
// CHECK-LABEL: func.func @active_blocks
// CHECK:         scf.for %{{.+}} = %c0 to %c512 step %c256
// CHECK:           scf.for %{{.+}} = %c0 to %{{.+}} step %c1
// CHECK:             vector.contract {{.+}} : vector<4x4xf32>, vector<4x16xf32> into vector<4x16xf32>
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

// A panel packed as bf16 (#moe.packed<storage = bf16>): the same f32
// register blocks, each step's panel rows read as bf16 and widened once
// (above the contraction's broadcast, not once per row of the block), and
// the next block prefetched by its own 2-byte elements (a 64-element row
// is two cache lines). On AVX2 the 64-column panel (packed for AVX-512) is
// computed 16 columns at a time, without the prefetch.
// CHECK-LABEL: func.func @bf16_panel
// CHECK:         scf.for %{{.+}} = %c0 to %c64 step %c16
// CHECK:           vector.transfer_read {{.+}} : tensor<4x16xbf16>, vector<4x16xbf16>
// CHECK:           arith.extf %{{.+}} : vector<4x16xbf16> to vector<4x16xf32>
// CHECK:           vector.contract {{.+}} : vector<4x6xf32>, vector<4x16xf32> into vector<6x16xf32>
// AVX512-LABEL: func.func @bf16_panel
// AVX512:         scf.for %{{.+}} = %c0 to %c512 step %c128
// AVX512:           scf.for %{{.+}} = %c0 to %c16 step %c1
// AVX512:             scf.for %{{.+}} = %c0 to %c128 step %c4
// AVX512:               vector.transfer_read {{.+}} : tensor<4x64xbf16>, vector<4x64xbf16>
// AVX512-NOT:           vector.broadcast
// AVX512:               arith.extf %{{.+}} : vector<4x64xbf16> to vector<4x64xf32>
// AVX512:               vector.contract {{.+}} : vector<4x6xf32>, vector<4x64xf32> into vector<6x64xf32>
// AVX512:               memref.prefetch %{{.+}}[%{{.+}}, %c0], read, locality<2>, data : memref<512x64xbf16
// AVX512:               memref.prefetch %{{.+}}[%{{.+}}, %c32], read, locality<2>, data : memref<512x64xbf16
func.func @bf16_panel(%a: tensor<16x512x6xf32>, %b: tensor<512x64xbf16>, %c: tensor<16x6x64xf32>)
    -> tensor<16x6x64xf32> {
  %0 = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, k, m)>,
                                            affine_map<(b, m, n, k) -> (k, n)>,
                                            affine_map<(b, m, n, k) -> (b, m, n)>]
      {moe.expert_tile, moe.packed_panel = 64 : i64}
      ins(%a, %b : tensor<16x512x6xf32>, tensor<512x64xbf16>)
      outs(%c : tensor<16x6x64xf32>) -> tensor<16x6x64xf32>
  return %0 : tensor<16x6x64xf32>
}

// A panel quantized to i8 (#moe.packed<storage = i8>): the same f32
// register blocks, each step's panel rows read as bytes and converted once
// (exact: |q| <= 127); the column scales apply after the sum, outside this
// contraction. A 64-byte row is one cache line: one prefetch per row.
// CHECK-LABEL: func.func @i8_panel
// CHECK:         scf.for %{{.+}} = %c0 to %c64 step %c16
// CHECK:           vector.transfer_read {{.+}} : tensor<4x16xi8>, vector<4x16xi8>
// CHECK:           arith.sitofp %{{.+}} : vector<4x16xi8> to vector<4x16xf32>
// CHECK:           vector.contract {{.+}} : vector<4x6xf32>, vector<4x16xf32> into vector<6x16xf32>
// AVX512-LABEL: func.func @i8_panel
// AVX512:         scf.for %{{.+}} = %c0 to %c512 step %c128
// AVX512:           scf.for %{{.+}} = %c0 to %c16 step %c1
// AVX512:             scf.for %{{.+}} = %c0 to %c128 step %c4
// AVX512:               vector.transfer_read {{.+}} : tensor<4x64xi8>, vector<4x64xi8>
// AVX512-NOT:           vector.broadcast
// AVX512:               arith.sitofp %{{.+}} : vector<4x64xi8> to vector<4x64xf32>
// AVX512:               vector.contract {{.+}} : vector<4x6xf32>, vector<4x64xf32> into vector<6x64xf32>
// AVX512-COUNT-4:       memref.prefetch %{{.+}}[%{{.+}}, %c0], read, locality<2>, data : memref<512x64xi8
// AVX512-NOT:           memref.prefetch
// AVX512:             scf.yield
func.func @i8_panel(%a: tensor<16x512x6xf32>, %b: tensor<512x64xi8>, %c: tensor<16x6x64xf32>)
    -> tensor<16x6x64xf32> {
  %0 = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, k, m)>,
                                            affine_map<(b, m, n, k) -> (k, n)>,
                                            affine_map<(b, m, n, k) -> (b, m, n)>]
      {moe.expert_tile, moe.packed_panel = 64 : i64}
      ins(%a, %b : tensor<16x512x6xf32>, tensor<512x64xi8>)
      outs(%c : tensor<16x6x64xf32>) -> tensor<16x6x64xf32>
  return %0 : tensor<16x6x64xf32>
}

// The router's logits: an unmarked matmul of a dynamic row count. Full row
// blocks (as many accumulator registers as the kernel's: 6 x 16 of 12 ymm
// on AVX2, 6 x 64 of 24 zmm on AVX-512) in a loop peeled at the last full
// block, then the rest row by row. Columns narrower than a vector register
// (8 experts) take one register per row, 16 rows on AVX-512, 12 on AVX2; a column
// count that no vector width divides keeps its loops.
// CHECK-LABEL: func.func @router
// CHECK:         %[[FULL:.+]] = affine.apply
// CHECK:         scf.for %{{.+}} = %c0 to %[[FULL]] step %c6
// CHECK:           scf.for %{{.+}} = %c0 to %c512 step %c1
// CHECK:             vector.contract {{.+}} : vector<6x1xf32>, vector<1x16xf32> into vector<6x16xf32>
// CHECK:         scf.for %{{.+}} = %[[FULL]] to %{{.+}} step %c6
// CHECK:           scf.for %{{.+}} = %c0 to %{{.+}} step %c1
// CHECK:             scf.for %{{.+}} = %c0 to %c512 step %c1
// CHECK:               vector.contract {{.+}} : vector<1x1xf32>, vector<1x16xf32> into vector<1x16xf32>
// CHECK:         vector.contract {{.+}} : vector<12x1xf32>, vector<1x8xf32> into vector<12x8xf32>
// CHECK:         vector.contract {{.+}} : vector<1x1xf32>, vector<1x8xf32> into vector<1x8xf32>
// CHECK:         linalg.matmul ins(%{{.+}}, %{{.+}} : tensor<?x512xf32>, tensor<512x6xf32>)
// AVX512-LABEL: func.func @router
// AVX512:         vector.contract {{.+}} : vector<6x1xf32>, vector<1x64xf32> into vector<6x64xf32>
// AVX512:         vector.contract {{.+}} : vector<1x1xf32>, vector<1x64xf32> into vector<1x64xf32>
// AVX512:         vector.contract {{.+}} : vector<16x1xf32>, vector<1x8xf32> into vector<16x8xf32>
// AVX512:         vector.contract {{.+}} : vector<1x1xf32>, vector<1x8xf32> into vector<1x8xf32>
// AVX512:         linalg.matmul ins(%{{.+}}, %{{.+}} : tensor<?x512xf32>, tensor<512x6xf32>)
func.func @router(%x: tensor<?x512xf32>, %w: tensor<512x64xf32>, %c: tensor<?x64xf32>,
                  %w8: tensor<512x8xf32>, %c8: tensor<?x8xf32>,
                  %w6: tensor<512x6xf32>, %c6: tensor<?x6xf32>)
    -> (tensor<?x64xf32>, tensor<?x8xf32>, tensor<?x6xf32>) {
  %0 = linalg.matmul ins(%x, %w : tensor<?x512xf32>, tensor<512x64xf32>)
      outs(%c : tensor<?x64xf32>) -> tensor<?x64xf32>
  %1 = linalg.matmul ins(%x, %w8 : tensor<?x512xf32>, tensor<512x8xf32>)
      outs(%c8 : tensor<?x8xf32>) -> tensor<?x8xf32>
  %2 = linalg.matmul ins(%x, %w6 : tensor<?x512xf32>, tensor<512x6xf32>)
      outs(%c6 : tensor<?x6xf32>) -> tensor<?x6xf32>
  return %0, %1, %2 : tensor<?x64xf32>, tensor<?x8xf32>, tensor<?x6xf32>
}
