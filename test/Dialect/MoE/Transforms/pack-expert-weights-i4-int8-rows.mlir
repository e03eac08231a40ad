// RUN: moe-opt %s --moe-pack-expert-weights="panel=64 storage=i4 group=32 activations=i8" | FileCheck %s
// RUN: moe-opt %s --moe-pack-expert-weights="panel=64 storage=i4 group=32 activations=i8" | moe-opt | FileCheck %s
// RUN: moe-opt %s --pass-pipeline="builtin.module(moe-pack-expert-weights{panel=64 storage=i4 group=32 activations=i8},func.func(convert-moe-to-fused-linalg{row-block=4}),canonicalize,cse)" \
// RUN:   | FileCheck %s --check-prefix=FUSED
// RUN: moe-opt %s --pass-pipeline="builtin.module(moe-pack-expert-weights{panel=64 storage=i4 group=32 activations=i8},func.func(convert-moe-to-linalg),canonicalize,cse)" \
// RUN:   | FileCheck %s --check-prefix=REF
// RUN: moe-opt %s --moe-cpu-pipeline="pack-weights=true packed-storage=i4 packed-group=32 packed-activations=i8 threads=1 target-cpu=znver4" | FileCheck %s --check-prefix=VNNI
// RUN: moe-opt %s --moe-cpu-pipeline="pack-weights=true packed-storage=i4 packed-group=32 packed-activations=i8 threads=1 target-cpu=skylake-avx512" | FileCheck %s --check-prefix=BW
// RUN: moe-opt %s --moe-cpu-pipeline="pack-weights=true packed-storage=i4 packed-group=32 packed-activations=i8 threads=1 target-cpu=haswell" | FileCheck %s --check-prefix=AVX2
// RUN: moe-opt %s --moe-cpu-pipeline="pack-weights=true packed-storage=i4 packed-group=32 packed-activations=i8 threads=1 target-cpu=x86-64" | FileCheck %s --check-prefix=GENERIC
// RUN: not moe-opt %s --moe-pack-expert-weights="storage=i8 activations=i8" 2>&1 | FileCheck %s --check-prefix=NOT-I4
// RUN: not moe-opt %s --moe-pack-expert-weights="storage=i4 group=6 activations=i8" 2>&1 | FileCheck %s --check-prefix=SIX
// RUN: not moe-opt %s --moe-pack-expert-weights="storage=i4 activations=f16" 2>&1 | FileCheck %s --check-prefix=KIND

// NOT-I4: error: moe-pack-expert-weights: activations=i8 is for storage=i4 (the integer dot product of 4-bit weights), got storage=i8
// SIX: error: moe-pack-expert-weights: activations=i8 stores rows four by four and needs a group that is a multiple of 4, got group=6
// KIND: error: moe-pack-expert-weights: activations must be f32 or i8, got 'f16'

// The 4-bit values as for storage=i4, each nibble then v + 8 (the sign bit
// flipped: XOR 0x88) and the bytes of each four rows of a panel
// interleaved: [E, K / 4, 4, P', P / 2] -> [E, K / 4, P', P / 2, 4], read
// back as [E, P', K, P / 2].
// CHECK-LABEL: func.func @layer_pack_weights(%{{.+}}: tensor<4x64x96xf32>, %{{.+}}: tensor<4x96x64xf32>)
// CHECK-SAME:      -> (tensor<4x2x64x32xi8>, tensor<4x2x2x64xf32>, tensor<4x1x96x32xi8>, tensor<4x1x3x64xf32>)
// CHECK:           %[[FLIP:.+]] = arith.constant -120 : i8
// CHECK:           arith.xori %{{.+}}, %[[FLIP]] : i8
// CHECK:         tensor.expand_shape %{{.+}} output_shape [4, 16, 4, 2, 32] : tensor<4x64x2x32xi8> into tensor<4x16x4x2x32xi8>
// CHECK:         linalg.transpose ins(%{{.+}} : tensor<4x16x4x2x32xi8>) outs(%{{.+}} : tensor<4x16x2x32x4xi8>) permutation = [0, 1, 3, 4, 2]
// CHECK:         tensor.collapse_shape %{{.+}} : tensor<4x16x2x32x4xi8> into tensor<4x16x2x128xi8>
// CHECK:         linalg.transpose ins(%{{.+}} : tensor<4x64x2x32xi8>) outs(%{{.+}} : tensor<4x2x64x32xi8>) permutation = [0, 2, 1, 3]
// CHECK-LABEL: func.func @layer_packed(
// CHECK:         moe.expert
// CHECK-SAME:      #moe.packed<panel = 64, storage = i4, group = 32, activations = i8>
// CHECK-SAME:      #moe.packed<panel = 64, storage = i4, group = 32, activations = i8>

// Fused: each tile's rows quantized once per group of 32 (max |x| / 127,
// rounded half to even, 8 x the group's sum for the codes' offset); each
// panel a loop over the groups: the i32 sums of codes times rows
// (moe.nibble_dot: low nibbles the first 32 columns, high ones the rest),
// then less the offsets, times the row and column scales, added.
// FUSED-LABEL: func.func @layer_packed(
// FUSED:         arith.constant 1.270000e+02 : f32
// FUSED:         math.roundeven
// FUSED:         arith.shli %{{.+}}, %{{.+}} : i32
// FUSED:         scf.forall
// FUSED:           scf.for %{{.+}} = %{{.+}} to %c2 step %c1 iter_args({{.+}}) -> (tensor<?x4x64xf32>, tensor<?x4x2x32xi32>)
// FUSED:             linalg.fill ins(%{{.+}} : i32)
// FUSED:             linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction"]} ins(%{{.+}}, %{{.+}} : tensor<?x4x8x4xi8>, tensor<8x32x4xi8>) outs(%{{.+}} : tensor<?x4x2x32xi32>) attrs =  {moe.nibble_dot}
// FUSED:               arith.shrui
// FUSED:               arith.andi
// FUSED:               arith.extui %{{.+}} : i8 to i32
// FUSED:               arith.extsi %{{.+}} : i8 to i32
// FUSED:             linalg.generic {{.+}} ins(%{{.+}} : tensor<?x4x64xi32>, tensor<?x4xf32>, tensor<?x4xi32>, tensor<64xf32>)
// FUSED:               arith.subi
// FUSED:               arith.sitofp %{{.+}} : i32 to f32

// Unfused (the reference lowering, the GPU mapping): the slice read back in
// the plain 4-bit layout and dequantized; each matmul by it multiplies the
// values of its rows' int8 codes.
// REF-LABEL: func.func @layer_packed(
// REF:           arith.xori
// REF:           math.roundeven
// REF:           arith.sitofp %{{.+}} : i8 to f32
// REF:         linalg.matmul
// REF:           math.roundeven
// REF:         linalg.matmul

// Per target: vpdpbusd (AVX512-VNNI), vpmaddubsw + vpmaddwd (AVX512-BW,
// AVX2), plain vector arithmetic (x86-64).
// The codes 32 quads (4 KiB) ahead are prefetched into L1, a line each.
// VNNI-LABEL: llvm.func @layer_packed
// VNNI:         "llvm.intr.prefetch"(%{{.+}}) <{cache = 1 : i32, hint = 3 : i32, rw = 0 : i32}>
// VNNI:         "llvm.intr.prefetch"(%{{.+}}) <{cache = 1 : i32, hint = 3 : i32, rw = 0 : i32}>
// VNNI:         llvm.and %{{.+}} : vector<64xi8>
// VNNI:         llvm.lshr %{{.+}} : vector<64xi8>
// VNNI:         llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%{{.+}}, %{{.+}}, %{{.+}}) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
// The epilogue on the sums in registers: less the offsets, converted,
// times the row and column scales, added to the result.
// VNNI:         llvm.sub %{{.+}}, %{{.+}} : vector<16xi32>
// VNNI-NEXT:    llvm.sitofp %{{.+}} : vector<16xi32> to vector<16xf32>
// VNNI-NEXT:    llvm.fmul %{{.+}}, %{{.+}} : vector<16xf32>
// BW-LABEL: llvm.func @layer_packed
// BW:         llvm.call_intrinsic "llvm.x86.avx512.pmaddubs.w.512"(%{{.+}}, %{{.+}}) : (vector<64xi8>, vector<64xi8>) -> vector<32xi16>
// BW:         llvm.call_intrinsic "llvm.x86.avx512.pmaddw.d.512"(%{{.+}}, %{{.+}}) : (vector<32xi16>, vector<32xi16>) -> vector<16xi32>
// AVX2-LABEL: llvm.func @layer_packed
// AVX2:         llvm.call_intrinsic "llvm.x86.avx2.pmadd.ub.sw"(%{{.+}}, %{{.+}}) : (vector<32xi8>, vector<32xi8>) -> vector<16xi16>
// AVX2:         llvm.call_intrinsic "llvm.x86.avx2.pmadd.wd"(%{{.+}}, %{{.+}}) : (vector<16xi16>, vector<16xi16>) -> vector<8xi32>
// GENERIC-LABEL: llvm.func @layer_packed
// GENERIC-NOT:   llvm.call_intrinsic "llvm.x86
// GENERIC:       llvm.mul %{{.+}} : vector<4xi32>
// GENERIC-NOT:   llvm.call_intrinsic "llvm.x86
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
