// RUN: moe-opt %s --moe-gpu-tensor-core-matmuls --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-gpu-tensor-core-matmuls=mma-sync --split-input-file | FileCheck %s --check-prefix=MMA

// An f16 block GEMM (in a loop, static, sizes 16 x 8 x 16 divides): one
// scf.parallel over the 16 x 8 output tiles whose induction variables are
// the tile offsets; each tile accumulates over K in steps of 16.

// CHECK-LABEL: func.func @tile_gemm
// CHECK-SAME:    (%[[A:.+]]: memref<32x64xf16>, %[[B:.+]]: memref<64x16xf16>, %[[C:.+]]: memref<32x16xf32>
// CHECK:         scf.forall
// CHECK:           scf.parallel (%[[M0:.+]], %[[N0:.+]]) = (%c0{{.*}}, %c0{{.*}}) to (%c32{{.*}}, %c16{{.*}}) step (%c16{{.*}}, %c8{{.*}})
// CHECK:             %[[ACC:.+]] = vector.transfer_read %[[C]][%[[M0]], %[[N0]]]{{.*}} : memref<32x16xf32>, vector<16x8xf32>
// CHECK:             %[[R:.+]] = scf.for %[[K0:.+]] = %c0{{.*}} to %c64{{.*}} step %c16{{.*}} iter_args(%[[SUM:.+]] = %[[ACC]])
// CHECK:               %[[VA:.+]] = vector.transfer_read %[[A]][%[[M0]], %[[K0]]]{{.*}} : memref<32x64xf16>, vector<16x16xf16>
// CHECK:               %[[VB:.+]] = vector.transfer_read %[[B]][%[[K0]], %[[N0]]]{{.*}} : memref<64x16xf16>, vector<16x8xf16>
// CHECK:               %[[EA:.+]] = arith.extf %[[VA]] : vector<16x16xf16> to vector<16x16xf32>
// CHECK:               %[[EB:.+]] = arith.extf %[[VB]] : vector<16x8xf16> to vector<16x8xf32>
// CHECK:               vector.contract {{.*}} %[[EA]], %[[EB]], %[[SUM]] : vector<16x16xf32>, vector<16x8xf32> into vector<16x8xf32>
// CHECK:             vector.transfer_write %[[R]], %[[C]][%[[M0]], %[[N0]]]
// CHECK-NOT:     linalg.matmul

// Per lane: fragments in the mma.m16n8k16 layout, nvgpu.mma.sync over K.
// MMA-LABEL: func.func @tile_gemm
// MMA:         scf.parallel (%[[M0:.+]], %[[N0:.+]]) = {{.+}} step (%c16{{.*}}, %c8{{.*}})
// MMA:           %[[LANE:.+]] = gpu.lane_id
// MMA:           %[[GROUP:.+]] = arith.divui %[[LANE]], %c4
// MMA:           %[[TIG:.+]] = arith.remui %[[LANE]], %c4
// MMA:           %[[PAIR:.+]] = arith.muli %[[TIG]], %c2
// MMA:           %[[ROW0:.+]] = arith.addi %[[M0]], %[[GROUP]]
// MMA:           %[[ROW1:.+]] = arith.addi %[[ROW0]], %c8
// MMA:           %[[COL:.+]] = arith.addi %[[N0]], %[[PAIR]]
// MMA:           vector.load %{{.+}}[%[[ROW0]], %[[COL]]] : memref<32x16xf32>, vector<2xf32>
// MMA:           vector.load %{{.+}}[%[[ROW1]], %[[COL]]] : memref<32x16xf32>, vector<2xf32>
// MMA:           scf.for %[[K0:.+]] = {{.+}} iter_args(%[[SUM:.+]] = %{{.+}}) -> (vector<2x2xf32>)
// MMA:             %[[KP:.+]] = arith.addi %[[K0]], %[[PAIR]]
// MMA:             vector.load %{{.+}}[%[[ROW0]], %[[KP]]] : memref<32x64xf16>, vector<2xf16>
// MMA:             vector.load %{{.+}}[%[[ROW1]], %[[KP]]] : memref<32x64xf16>, vector<2xf16>
// MMA:             memref.load %{{.+}} : memref<64x16xf16>
// MMA:             %[[FB:.+]] = vector.from_elements {{.+}} : vector<2x2xf16>
// MMA:             nvgpu.mma.sync(%{{.+}}, %[[FB]], %[[SUM]]) {mmaShape = [16, 8, 16]} : (vector<4x2xf16>, vector<2x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>
// MMA:           vector.store %{{.+}}, %{{.+}}[%[[ROW0]], %[[COL]]] : memref<32x16xf32>, vector<2xf32>
// MMA:           vector.store %{{.+}}, %{{.+}}[%[[ROW1]], %[[COL]]] : memref<32x16xf32>, vector<2xf32>
func.func @tile_gemm(%a: memref<32x64xf16>, %b: memref<64x16xf16>, %c: memref<32x16xf32>) {
  scf.forall (%e) in (4) {
    linalg.matmul ins(%a, %b : memref<32x64xf16>, memref<64x16xf16>) outs(%c : memref<32x16xf32>)
  }
  return
}

// -----

// Left alone: f32 operands, sizes the mma shape does not divide, and a GEMM
// outside any loop (not a block's work).
// CHECK-LABEL: func.func @not_tensor_core
// CHECK-COUNT-3: linalg.matmul
// CHECK-NOT:     vector.contract
func.func @not_tensor_core(%a32: memref<16x16xf32>, %b32: memref<16x8xf32>, %c: memref<16x8xf32>,
                           %a: memref<16x24xf16>, %b: memref<24x8xf16>,
                           %a16: memref<16x16xf16>, %b16: memref<16x8xf16>) {
  scf.forall (%e) in (4) {
    linalg.matmul ins(%a32, %b32 : memref<16x16xf32>, memref<16x8xf32>) outs(%c : memref<16x8xf32>)
    linalg.matmul ins(%a, %b : memref<16x24xf16>, memref<24x8xf16>) outs(%c : memref<16x8xf32>)
  }
  linalg.matmul ins(%a16, %b16 : memref<16x16xf16>, memref<16x8xf16>) outs(%c : memref<16x8xf32>)
  return
}

// -----

// bf16: the same tiles; per lane, the fragments travel as i32 pairs into
// NVVM's mma (the NVGPU lowering has no bf16 types yet).
// CHECK-LABEL: func.func @tile_gemm_bf16
// CHECK:         arith.extf {{.+}} : vector<16x16xbf16> to vector<16x16xf32>
// CHECK:         vector.contract
// MMA-LABEL: func.func @tile_gemm_bf16
// MMA:         vector.bitcast %{{.+}} : vector<2xbf16> to vector<1xi32>
// MMA:         nvvm.mma.sync A[{{.+}}] B[{{.+}}] C[{{.+}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
func.func @tile_gemm_bf16(%a: memref<16x32xbf16>, %b: memref<32x8xbf16>, %c: memref<16x8xf32>) {
  scf.forall (%e) in (2) {
    linalg.matmul ins(%a, %b : memref<16x32xbf16>, memref<32x8xbf16>) outs(%c : memref<16x8xf32>)
  }
  return
}
