// RUN: moe-opt %s --moe-pack-expert-weights="panel=64 storage=i8" | FileCheck %s
// RUN: moe-opt %s --moe-pack-expert-weights="panel=64 storage=i8" | moe-opt | FileCheck %s
// RUN: moe-opt %s --pass-pipeline="builtin.module(moe-pack-expert-weights{panel=64 storage=i8},func.func(convert-moe-to-fused-linalg{row-block=4}),canonicalize,cse)" \
// RUN:   | FileCheck %s --check-prefix=FUSED
// RUN: moe-opt %s --pass-pipeline="builtin.module(moe-pack-expert-weights{panel=64 storage=i8},func.func(convert-moe-to-linalg),canonicalize,cse)" \
// RUN:   | FileCheck %s --check-prefix=REF
// RUN: moe-opt %s --moe-cpu-pipeline="pack-weights=true packed-storage=i8 threads=1" | FileCheck %s --check-prefix=LLVM

// f32 weights quantized to int8, one scale per output column: the column's
// largest magnitude (maxnumf: a NaN does not poison it) over 127, then each
// weight divided by its scale (by 1 in a zero column), rounded half to even
// and clamped to [-127, 127] (the clamp also defines the conversion of a
// NaN). The int8 panels are packed as linalg.pack packs f32 ones; the
// scales are padded with zeros to whole panels, [E, ceil(N / P), P].
// CHECK-LABEL: func.func @layer_pack_weights(%{{.+}}: tensor<4x64x96xf32>, %{{.+}}: tensor<4x96x64xf32>)
// CHECK-SAME:      -> (tensor<4x2x64x64xi8>, tensor<4x2x64xf32>, tensor<4x1x96x64xi8>, tensor<4x1x64xf32>)
// CHECK:         linalg.generic {{.+}} iterator_types = ["parallel", "reduction", "parallel"]} ins(%{{.+}} : tensor<4x64x96xf32>) outs(%{{.+}} : tensor<4x96xf32>)
// CHECK:           math.absf
// CHECK:           arith.maxnumf
// CHECK:         arith.constant 1.270000e+02 : f32
// CHECK:         linalg.generic {{.+}} ins(%{{.+}}, %{{.+}} : tensor<4x64x96xf32>, tensor<4x96xf32>) outs(%{{.+}} : tensor<4x64x96xi8>)
// CHECK:           arith.select
// CHECK:           arith.divf
// CHECK:           math.roundeven
// CHECK:           %[[LOW:.+]] = arith.constant -1.270000e+02 : f32
// CHECK:           arith.maxnumf %{{.+}}, %[[LOW]]
// CHECK:           %[[HIGH:.+]] = arith.constant 1.270000e+02 : f32
// CHECK:           arith.minnumf %{{.+}}, %[[HIGH]]
// CHECK:           arith.fptosi %{{.+}} : f32 to i8
// CHECK:         tensor.pad %{{.+}} low[0, 0, 0] high[0, 0, 32]
// CHECK:         linalg.transpose {{.+}} permutation = [0, 2, 1, 3]
// CHECK:         tensor.pad %{{.+}} low[0, 0] high[0, 32]
// CHECK:         tensor.expand_shape %{{.+}} {{\[}}[0], [1, 2]] output_shape [4, 2, 64] : tensor<4x128xf32> into tensor<4x2x64xf32>
// CHECK:         return %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} : tensor<4x2x64x64xi8>, tensor<4x2x64xf32>, tensor<4x1x96x64xi8>, tensor<4x1x64xf32>

// Each quantized weight is followed by its scales, in the packed entry's
// arguments as in the pack function's results; the expert takes the scales
// in the order of its quantized weights.
// CHECK-LABEL: func.func @layer_packed(
// CHECK-SAME:      %{{.+}}: tensor<?x64xf32>, %[[Q1:[^:]+]]: tensor<4x2x64x64xi8>, %[[S1:[^:]+]]: tensor<4x2x64xf32>, %[[Q2:[^:]+]]: tensor<4x1x96x64xi8>, %[[S2:[^:]+]]: tensor<4x1x64xf32>)
// CHECK:         moe.expert {{.+}} weights(%[[Q1]], %[[Q2]] : tensor<4x2x64x64xi8>, tensor<4x1x96x64xi8>)
// CHECK-SAME:      scales(%[[S1]], %[[S2]] : tensor<4x2x64xf32>, tensor<4x1x64xf32>)
// CHECK-SAME:      attributes {weight_layouts = [#moe.packed<panel = 64, storage = i8>, #moe.packed<panel = 64, storage = i8>]}
// CHECK:         ^bb0(%{{.+}}: tensor<?x64xf32>, %{{.+}}: tensor<64x96xf32>, %{{.+}}: tensor<96x64xf32>):

// The fused tiles multiply f32 rows by the int8 panels (the batch_matmul
// converts each element) from zero, then add each panel's sums times its
// column scales to the result: the scale factors out of the sum over K.
// No dequantized copy of a weight is made.
// FUSED-LABEL: func.func @layer_packed
// FUSED-NOT:     arith.sitofp
// FUSED:         %[[SUMS:.+]] = linalg.batch_matmul {{.+}} {moe.expert_tile, moe.packed_panel = 64 : i64}
// FUSED-SAME:      ins(%{{.+}}, %{{.+}} : tensor<?x64x4xf32>, tensor<64x64xi8>) outs(%{{.+}} : tensor<?x4x64xf32>)
// FUSED:         linalg.generic {{.+}} ins(%[[SUMS]], %{{.+}} : tensor<?x4x64xf32>, tensor<64xf32>) outs(%{{.+}} : tensor<?x4x64xf32>) attrs = {moe.expert_tile}
// FUSED:           %[[SCALED:.+]] = arith.mulf
// FUSED:           arith.addf %{{.+}}, %[[SCALED]]
// FUSED:         linalg.batch_matmul {{.+}} {moe.expert_tile, moe.packed_panel = 64 : i64}
// FUSED-SAME:      ins(%{{.+}}, %{{.+}} : tensor<?x96x4xf32>, tensor<96x64xi8>) outs(%{{.+}} : tensor<?x4x64xf32>)

// The reference lowering unpacks each expert's slice and dequantizes it to
// the body's f32 matrix.
// REF-LABEL: func.func @layer_packed
// REF:         linalg.transpose ins(%{{.+}} : tensor<2x64x64xi8>) {{.+}} permutation = [1, 0, 2]
// REF:         %[[W:.+]] = linalg.generic {{.+}} ins(%{{.+}}, %{{.+}} : tensor<64x96xi8>, tensor<96xf32>) outs(%{{.+}} : tensor<64x96xf32>)
// REF:           arith.sitofp %{{.+}} : i8 to f32
// REF:           arith.mulf
// REF:         linalg.matmul ins(%{{.+}}, %[[W]] : tensor<?x64xf32>, tensor<64x96xf32>)

// Through the CPU pipeline, the panels are converted 64 bytes at a time.
// LLVM-LABEL: llvm.func @layer_packed
// LLVM:         llvm.sitofp %{{.+}} : vector<{{[0-9]+}}xi8> to vector<{{[0-9]+}}xf32>
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
