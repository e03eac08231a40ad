// RUN: moe-opt %s --moe-pack-expert-weights="panel=64 storage=i4 group=32 activations=i8 scales=f16" | FileCheck %s
// RUN: moe-opt %s --moe-pack-expert-weights="panel=64 storage=i4 group=32 activations=i8 scales=f16" | moe-opt | FileCheck %s
// RUN: moe-opt %s --moe-pack-expert-weights="panel=64 storage=i8 scales=f16" | FileCheck %s --check-prefix=I8
// RUN: moe-opt %s --pass-pipeline="builtin.module(moe-pack-expert-weights{panel=64 storage=i4 group=32 activations=i8 scales=f16},func.func(convert-moe-to-fused-linalg{row-block=4}),canonicalize,cse)" \
// RUN:   | FileCheck %s --check-prefix=FUSED
// RUN: moe-opt %s --pass-pipeline="builtin.module(moe-pack-expert-weights{panel=64 storage=i8 scales=f16},func.func(convert-moe-to-fused-linalg{row-block=4}),canonicalize,cse)" \
// RUN:   | FileCheck %s --check-prefix=FUSED-I8
// RUN: moe-opt %s --pass-pipeline="builtin.module(moe-pack-expert-weights{panel=64 storage=i4 group=32 scales=f16},func.func(convert-moe-to-linalg),canonicalize,cse)" \
// RUN:   | FileCheck %s --check-prefix=REF
// RUN: moe-opt %s --moe-cpu-pipeline="pack-weights=true packed-storage=i4 packed-group=32 packed-activations=i8 packed-scales=f16 threads=1 target-cpu=znver4" | FileCheck %s --check-prefix=VNNI
// RUN: moe-opt %s --moe-cpu-pipeline="pack-weights=true packed-storage=i4 packed-group=32 packed-activations=i8 packed-scales=f16 threads=1 target-cpu=haswell" | FileCheck %s --check-prefix=AVX2
// RUN: not moe-opt %s --moe-pack-expert-weights="storage=bf16 scales=f16" 2>&1 | FileCheck %s --check-prefix=NOT-QUANTIZED
// RUN: not moe-opt %s --moe-pack-expert-weights="storage=i8 scales=bf16" 2>&1 | FileCheck %s --check-prefix=KIND
// RUN: not moe-opt %s --moe-cpu-pipeline="pack-weights=true packed-storage=f32 packed-scales=f16" 2>&1 | FileCheck %s --check-prefix=PIPELINE

// NOT-QUANTIZED: error: moe-pack-expert-weights: scales=f16 is for quantized weights (storage=i8 or i4), got storage=bf16
// KIND: error: moe-pack-expert-weights: scales must be f32 or f16, got 'bf16'
// PIPELINE: packed-scales must be f32, or f16 with packed-storage=i8 or i4, got 'f16' (packed-storage=f32)

// The scales are computed in f32 (the codes divide by them), then rounded
// to f16: the pack function returns them as f16.
// CHECK-LABEL: func.func @layer_pack_weights(%{{.+}}: tensor<4x64x96xf32>, %{{.+}}: tensor<4x96x64xf32>)
// CHECK-SAME:      -> (tensor<4x2x64x32xi8>, tensor<4x2x2x64xf16>, tensor<4x1x96x32xi8>, tensor<4x1x3x64xf16>)
// CHECK:           arith.truncf %{{.+}} : f32 to f16
// CHECK-LABEL: func.func @layer_packed(
// CHECK-SAME:      %{{.+}}: tensor<4x2x2x64xf16>
// CHECK:         moe.expert
// CHECK-SAME:      scales(%{{.+}}, %{{.+}} : tensor<4x2x2x64xf16>, tensor<4x1x3x64xf16>)
// CHECK-SAME:      #moe.packed<panel = 64, storage = i4, group = 32, activations = i8, scales = f16>

// I8-LABEL: func.func @layer_pack_weights(
// I8-SAME:      -> (tensor<4x2x64x64xi8>, tensor<4x2x64xf16>, tensor<4x1x96x64xi8>, tensor<4x1x64xf16>)
// I8:           arith.truncf %{{.+}} : f32 to f16
// I8:         #moe.packed<panel = 64, storage = i8, scales = f16>

// Fused: each group's column scales are read as f16 and widened in the
// epilogue of the integer sums.
// FUSED-LABEL: func.func @layer_packed(
// FUSED:         linalg.generic {{.+}} ins(%{{.+}} : tensor<?x4x64xi32>, tensor<?x4xf32>, tensor<?x4xi32>, tensor<64xf16>)
// FUSED:           arith.subi
// FUSED:           arith.sitofp %{{.+}} : i32 to f32
// FUSED:           arith.extf %{{.+}} : f16 to f32
// FUSED-I8-LABEL: func.func @layer_packed(
// FUSED-I8:         linalg.generic {{.+}} ins(%{{.+}}, %{{.+}} : tensor<?x4x64xf32>, tensor<64xf16>)
// FUSED-I8:           arith.extf %{{.+}} : f16 to f32
// FUSED-I8-NEXT:      arith.mulf
// REF-LABEL: func.func @layer_packed(
// REF:           arith.extf %{{.+}} : f16 to f32
// REF-NEXT:      arith.mulf
// REF:         linalg.matmul

// The kernels' epilogue in registers loads 16 (AVX-512) or 8 (AVX2)
// scales as f16 and widens them (vcvtph2ps).
// VNNI-LABEL: llvm.func @layer_packed
// VNNI:         llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
// VNNI:         llvm.load %{{.+}} {alignment = 2 : i64} : !llvm.ptr -> vector<16xf16>
// VNNI-NEXT:    llvm.fpext %{{.+}} : vector<16xf16> to vector<16xf32>
// VNNI-NEXT:    llvm.fmul %{{.+}}, %{{.+}} : vector<16xf32>
// AVX2-LABEL: llvm.func @layer_packed
// AVX2:         llvm.call_intrinsic "llvm.x86.avx2.pmadd.wd"
// AVX2:         llvm.load %{{.+}} {alignment = 2 : i64} : !llvm.ptr -> vector<8xf16>
// AVX2-NEXT:    llvm.fpext %{{.+}} : vector<8xf16> to vector<8xf32>
func.func @layer(%x: tensor<?x64xf32>, %w1: tensor<4x64x96xf32>, %w2: tensor<4x96x64xf32>) -> tensor<?x64xf32> {
  %c0 = arith.constant 0 : index
  %z = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %ids = tensor.empty(%t) : tensor<?xi32>
  %offsets = arith.constant dense<0> : tensor<5xi32>
  %gates = tensor.empty(%t) : tensor<?xf32>
  %xe = moe.dispatch %x indices(%ids : tensor<?xi32>) : tensor<?x64xf32> -> tensor<?x64xf32>
  %ye = moe.expert %xe offsets(%offsets : tensor<5xi32>) weights(%w1, %w2 : tensor<4x64x96xf32>, tensor<4x96x64xf32>)
      : tensor<?x64xf32> -> tensor<?x64xf32> {
  ^bb0(%r: tensor<?x64xf32>, %a: tensor<64x96xf32>, %b: tensor<96x64xf32>):
    %c0_ = arith.constant 0 : index
    %z_ = arith.constant 0.0 : f32
    %n = tensor.dim %r, %c0_ : tensor<?x64xf32>
    %e = tensor.empty(%n) : tensor<?x96xf32>
    %f = linalg.fill ins(%z_ : f32) outs(%e : tensor<?x96xf32>) -> tensor<?x96xf32>
    %h = linalg.matmul ins(%r, %a : tensor<?x64xf32>, tensor<64x96xf32>) outs(%f : tensor<?x96xf32>) -> tensor<?x96xf32>
    %e2 = tensor.empty(%n) : tensor<?x64xf32>
    %f2 = linalg.fill ins(%z_ : f32) outs(%e2 : tensor<?x64xf32>) -> tensor<?x64xf32>
    %y = linalg.matmul ins(%h, %b : tensor<?x96xf32>, tensor<96x64xf32>) outs(%f2 : tensor<?x64xf32>) -> tensor<?x64xf32>
    moe.yield %y : tensor<?x64xf32>
  }
  %acc = linalg.fill ins(%z : f32) outs(%x : tensor<?x64xf32>) -> tensor<?x64xf32>
  %out = moe.combine %ye indices(%ids : tensor<?xi32>) weights(%gates : tensor<?xf32>) into %acc
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %out : tensor<?x64xf32>
}
