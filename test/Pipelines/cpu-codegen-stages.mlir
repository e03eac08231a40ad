// RUN: moe-opt %s --moe-cpu-codegen=stage=vectorize | FileCheck %s
// RUN: moe-opt %s --moe-cpu-codegen="stage=vectorize threads=2" | FileCheck %s --check-prefix=THREADS
// RUN: moe-opt %s --moe-cpu-codegen=stage=vectorize \
// RUN:   --one-shot-bufferize=bufferize-function-boundaries --moe-cpu-codegen=stage=lower \
// RUN:   | FileCheck %s --check-prefix=LOWER
// RUN: not moe-opt %s --moe-cpu-codegen=threads=0 2>&1 | FileCheck %s --check-prefix=OPTION
// RUN: not moe-opt %s --moe-cpu-codegen=threads=2000 2>&1 | FileCheck %s --check-prefix=OPTION-MANY

// OPTION: error: moe-cpu-codegen: threads must be in [1, 1024], got 0
// OPTION-MANY: error: moe-cpu-codegen: threads must be in [1, 1024], got 2000

// The marked 64-row contraction: left-hand tile transposed, K blocked by
// 256, 16-column strips, 4-row blocks, 4-deep steps of 4 x 16 x 4.
// CHECK-LABEL: func.func @tiles
// CHECK:         linalg.transpose ins(%{{.+}} : tensor<64x512xf32>)
// CHECK:         scf.for %{{.+}} = %c0 to %c512 step %c256
// CHECK:           scf.for %{{.+}} = %c0 to %c64 step %c16
// CHECK:             scf.for %{{.+}} = %c0 to %c64 step %c4
// CHECK:               scf.for %{{.+}} = %c0 to %c256 step %c4
// CHECK:                 vector.contract {{.+}} : vector<4x4xf32>, vector<4x16xf32> into vector<4x16xf32>
// An 8-row tile streams its weights: K blocked by 8.
// CHECK:         linalg.transpose ins(%{{.+}} : tensor<8x512xf32>)
// CHECK:         scf.for %{{.+}} = %c0 to %c512 step %c8
// CHECK:               scf.for %{{.+}} = %c0 to %c8 step %c4
// CHECK:                 vector.contract
// Rows that do not fill 4-row blocks, and unmarked contractions, stay as
// they are.
// CHECK:         linalg.matmul ins(%{{.+}}, %{{.+}} : tensor<5x512xf32>, tensor<512x64xf32>)
// CHECK:         linalg.matmul ins(%{{.+}}, %{{.+}} : tensor<64x512xf32>, tensor<512x64xf32>)
// CHECK-NOT:     moe.expert_tile

// Two threads: the 64 columns in two panels of 32.
// THREADS-LABEL: func.func @tiles
// THREADS:         scf.forall (%{{.+}}) in (2)
// THREADS:           scf.for %{{.+}} = %c0 to %c512 step %c256

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
                 %a5: tensor<5x512xf32>, %c5: tensor<5x64xf32>)
    -> (tensor<64x64xf32>, tensor<8x64xf32>, tensor<5x64xf32>, tensor<64x64xf32>) {
  %0 = linalg.matmul {moe.expert_tile} ins(%a, %b : tensor<64x512xf32>, tensor<512x64xf32>)
      outs(%c : tensor<64x64xf32>) -> tensor<64x64xf32>
  %1 = linalg.matmul {moe.expert_tile} ins(%a8, %b : tensor<8x512xf32>, tensor<512x64xf32>)
      outs(%c8 : tensor<8x64xf32>) -> tensor<8x64xf32>
  %2 = linalg.matmul {moe.expert_tile} ins(%a5, %b : tensor<5x512xf32>, tensor<512x64xf32>)
      outs(%c5 : tensor<5x64xf32>) -> tensor<5x64xf32>
  %3 = linalg.matmul ins(%a, %b : tensor<64x512xf32>, tensor<512x64xf32>)
      outs(%c : tensor<64x64xf32>) -> tensor<64x64xf32>
  return %0, %1, %2, %3 : tensor<64x64xf32>, tensor<8x64xf32>, tensor<5x64xf32>, tensor<64x64xf32>
}
