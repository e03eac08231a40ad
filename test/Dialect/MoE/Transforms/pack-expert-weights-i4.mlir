// RUN: moe-opt %s --moe-pack-expert-weights="panel=64 storage=i4 group=32" | FileCheck %s
// RUN: moe-opt %s --moe-pack-expert-weights="panel=64 storage=i4 group=32" | moe-opt | FileCheck %s
// RUN: moe-opt %s --pass-pipeline="builtin.module(moe-pack-expert-weights{panel=64 storage=i4 group=32},func.func(convert-moe-to-fused-linalg{row-block=4}),canonicalize,cse)" \
// RUN:   | FileCheck %s --check-prefix=FUSED
// RUN: moe-opt %s --pass-pipeline="builtin.module(moe-pack-expert-weights{panel=64 storage=i4 group=32},func.func(convert-moe-to-linalg),canonicalize,cse)" \
// RUN:   | FileCheck %s --check-prefix=REF
// RUN: moe-opt %s --moe-cpu-pipeline="pack-weights=true packed-storage=i4 packed-group=32 threads=1" | FileCheck %s --check-prefix=LLVM
// RUN: not moe-opt %s --moe-pack-expert-weights="storage=i4 group=48" 2>&1 | FileCheck %s --check-prefix=GROUP
// RUN: not moe-opt %s --moe-pack-expert-weights="storage=i4 panel=63" 2>&1 | FileCheck %s --check-prefix=ODD

// GROUP: error: moe-pack-expert-weights: storage=i4 with group=48 needs K divisible by the group; argument #1 is 'tensor<4x64x96xf32>' (K = 64)
// ODD: error: moe-pack-expert-weights: storage=i4 needs group >= 1 and an even panel, got group=32 panel=63

// f32 weights quantized to 4 bits in groups of 32 rows: per group and
// column, a scale (the largest magnitude over 7) and values rounded half to
// even, clamped to [-8, 7]; two values per byte, column c of a panel row in
// the low nibble of byte c and column c + 32 in its high nibble. Scales
// [E, ceil(N / P), K / G, P].
// CHECK-LABEL: func.func @layer_pack_weights(%{{.+}}: tensor<4x64x96xf32>, %{{.+}}: tensor<4x96x64xf32>)
// CHECK-SAME:      -> (tensor<4x2x64x32xi8>, tensor<4x2x2x64xf32>, tensor<4x1x96x32xi8>, tensor<4x1x3x64xf32>)
// CHECK:         tensor.pad %{{.+}} low[0, 0, 0] high[0, 0, 32]
// CHECK:         tensor.expand_shape %{{.+}} output_shape [4, 2, 32, 128] : tensor<4x64x128xf32> into tensor<4x2x32x128xf32>
// CHECK:         linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "reduction", "parallel"]} ins(%{{.+}} : tensor<4x2x32x128xf32>) outs(%{{.+}} : tensor<4x2x128xf32>)
// CHECK:           arith.maxnumf
// CHECK:         arith.constant 7.000000e+00 : f32
// CHECK:         linalg.generic {{.+}} outs(%{{.+}} : tensor<4x2x32x128xi8>)
// CHECK:           math.roundeven
// CHECK:           %[[LOW:.+]] = arith.constant -8.000000e+00 : f32
// CHECK:           arith.maxnumf %{{.+}}, %[[LOW]]
// CHECK:           arith.fptosi %{{.+}} : f32 to i8
// CHECK:         linalg.generic {{.+}} outs(%{{.+}} : tensor<4x64x2x32xi8>)
// CHECK:           arith.andi %{{.+}}, %c15_i8
// CHECK:           arith.shli %{{.+}}, %c4_i8
// CHECK:           arith.ori
// CHECK:         linalg.transpose {{.+}} permutation = [0, 2, 1, 3]
// CHECK-LABEL: func.func @layer_packed(
// CHECK-SAME:      %{{.+}}: tensor<?x64xf32>, %[[Q1:[^:]+]]: tensor<4x2x64x32xi8>, %[[S1:[^:]+]]: tensor<4x2x2x64xf32>, %[[Q2:[^:]+]]: tensor<4x1x96x32xi8>, %[[S2:[^:]+]]: tensor<4x1x3x64xf32>)
// CHECK:         moe.expert {{.+}} weights(%[[Q1]], %[[Q2]] : tensor<4x2x64x32xi8>, tensor<4x1x96x32xi8>)
// CHECK-SAME:      scales(%[[S1]], %[[S2]] : tensor<4x2x2x64xf32>, tensor<4x1x3x64xf32>)
// CHECK-SAME:      attributes {weight_layouts = [#moe.packed<panel = 64, storage = i4, group = 32>, #moe.packed<panel = 64, storage = i4, group = 32>]}

// Tiles of more than 8 rows (here the 64-row one) dequantize a panel to f32
// once for all their rows, a block of up to 128 rows (a multiple of the
// group; K = 64: one block, its loop folded) at a time, each group's two
// halves times the group's scales, vectorized; the f32 contraction then
// accumulates in a buffer of its own. K = 96 takes 3 blocks of 32 rows.
// FUSED-LABEL: func.func @layer_packed
// FUSED:         scf.for %{{.+}} step %c64
// FUSED:           scf.forall
// FUSED:             %[[LOCAL:.+]] = linalg.copy ins(%{{.+}} : tensor<?x4x64xf32>)
// FUSED:             %[[DQ:.+]] = scf.for %{{.+}} = %c0 to %c2 step %c1 iter_args(%{{.+}} = %{{.+}}) -> (tensor<64x64xf32>)
// FUSED:               linalg.generic {{.+}} ins(%{{.+}}, %{{.+}} : tensor<32x32xi8>, tensor<32xf32>) outs(%{{.+}} : tensor<32x32xf32>) attrs = {moe.panel_elementwise}
// FUSED:                 arith.shli %{{.+}}, %c4_i8
// FUSED:                 arith.shrsi %{{.+}}, %c4_i8
// FUSED:                 arith.sitofp
// FUSED:                 arith.mulf
// FUSED:               linalg.generic {{.+}} attrs = {moe.panel_elementwise}
// FUSED:             linalg.batch_matmul {{.+}} ins(%{{.+}}, %[[DQ]] : tensor<?x64x4xf32>, tensor<64x64xf32>) outs(%[[LOCAL]] : tensor<?x4x64xf32>)
// FUSED:           scf.forall
// FUSED:             scf.for %{{.+}} = %c0 to %c3 step %c1 iter_args(%{{.+}} = %{{.+}}, %{{.+}} = %{{.+}}) -> (tensor<?x4x64xf32>, tensor<32x64xf32>)
// FUSED:               linalg.batch_matmul {{.+}} ins(%{{.+}}, %{{.+}} : tensor<?x32x4xf32>, tensor<32x64xf32>)

// Decode tiles (8 rows or fewer) go over a panel one group of 32 rows at a
// time: its bytes unpacked into a 32 x 64 int8 panel (the same buffer every
// group: a loop operand), the int8 contraction from zero on the group's
// rows, then the sums times the group's scales added to the result.
// FUSED:         scf.for %{{.+}} step %c8
// FUSED:         scf.for %{{.+}} = %c0 to %c2 step %c1 iter_args(%{{.+}} = %{{.+}}, %[[BUF:.+]] = %{{.+}}, %{{.+}} = %{{.+}}) -> (tensor<?x4x64xf32>, tensor<32x64xi8>, tensor<?x4x64xf32>)
// FUSED:           linalg.generic {{.+}} ins(%{{.+}} : tensor<32x32xi8>) outs(%{{.+}} : tensor<32x32xi8>) attrs = {moe.panel_elementwise}
// FUSED:             arith.shli %{{.+}}, %c4_i8
// FUSED:             arith.shrsi %{{.+}}, %c4_i8
// FUSED:           tensor.insert_slice %{{.+}} into %[[BUF]][0, 0] [32, 32] [1, 1]
// FUSED:           linalg.generic {{.+}} attrs = {moe.panel_elementwise}
// FUSED:             arith.shrsi %{{.+}}, %c4_i8
// FUSED:           %[[UNPACKED:.+]] = tensor.insert_slice %{{.+}} into %{{.+}}[0, 32] [32, 32] [1, 1]
// FUSED:           %[[SUMS:.+]] = linalg.batch_matmul {{.+}} {moe.expert_tile, moe.packed_panel = 64 : i64} ins(%{{.+}}, %[[UNPACKED]] : tensor<?x32x4xf32>, tensor<32x64xi8>)
// FUSED:           linalg.generic {{.+}} ins(%[[SUMS]], %{{.+}} : tensor<?x4x64xf32>, tensor<64xf32>)
// FUSED:             arith.mulf
// FUSED:             arith.addf

// The reference lowering unpacks and dequantizes an expert's slice.
// REF-LABEL: func.func @layer_packed
// REF:         linalg.generic {{.+}} ins(%{{.+}}, %{{.+}} : tensor<2x2x32x32xi8>, tensor<2x2x2x32xf32>) outs(%{{.+}} : tensor<2x2x32x2x32xf32>)
// REF:           linalg.index 3
// REF:           arith.sitofp
// REF:           arith.mulf
// REF:         linalg.matmul

// Through the CPU pipeline: the unpacking is vectorized (a row of 32 bytes
// per shift) and the panels converted 64 bytes at a time.
// LLVM-LABEL: llvm.func @layer_packed
// LLVM:         llvm.ashr %{{.+}}, %{{.+}} : vector<32xi8>
// LLVM:         llvm.sitofp %{{.+}} : vector<64xi8> to vector<64xf32>
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
