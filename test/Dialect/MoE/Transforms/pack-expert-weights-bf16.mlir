// RUN: moe-opt %s --moe-pack-expert-weights="panel=64 storage=bf16" | FileCheck %s
// RUN: moe-opt %s --moe-pack-expert-weights="panel=64 storage=bf16" | moe-opt | FileCheck %s
// RUN: moe-opt %s --pass-pipeline="builtin.module(moe-pack-expert-weights{panel=64 storage=bf16},func.func(convert-moe-to-fused-linalg{row-block=4}),canonicalize,cse)" \
// RUN:   | FileCheck %s --check-prefix=FUSED
// RUN: moe-opt %s --pass-pipeline="builtin.module(moe-pack-expert-weights{panel=64 storage=bf16},func.func(convert-moe-to-linalg),canonicalize,cse)" \
// RUN:   | FileCheck %s --check-prefix=REF
// RUN: not moe-opt %s --moe-pack-expert-weights="storage=f16" 2>&1 | FileCheck %s --check-prefix=STORAGE

// STORAGE: error: moe-pack-expert-weights: storage must be f32 (as the weights are), bf16, i8 or i4, got 'f16'

// f32 weights packed as bf16: the pack function rounds each weight to
// nearest even by integer operations (bits + 0x7FFF + bit 16, upper half;
// a NaN becomes the quiet NaN of its sign), then packs the bf16 values.
// CHECK-LABEL: func.func @layer_pack_weights(%{{.+}}: tensor<4x64x96xf32>, %{{.+}}: tensor<4x96x64xf32>)
// CHECK-SAME:      -> (tensor<4x2x64x64xbf16>, tensor<4x1x96x64xbf16>)
// CHECK:         linalg.generic {{.+}} ins(%{{.+}} : tensor<4x64x96xf32>) outs(%{{.+}} : tensor<4x64x96xbf16>)
// CHECK:           %[[BITS:.+]] = arith.bitcast %{{.+}} : f32 to i32
// CHECK:           arith.addi %{{.+}}, %c32767_i32 : i32
// CHECK:           arith.cmpf uno
// CHECK:           arith.trunci %{{.+}} : i32 to i16
// CHECK:           arith.bitcast %{{.+}} : i16 to bf16
// CHECK:         tensor.pad %{{.+}} low[0, 0, 0] high[0, 0, 32]
// CHECK:           tensor.yield %{{.+}} : bf16
// CHECK:         linalg.transpose {{.+}} permutation = [0, 2, 1, 3]
// CHECK:         return %{{.+}}, %{{.+}} : tensor<4x2x64x64xbf16>, tensor<4x1x96x64xbf16>
// CHECK-LABEL: func.func @layer_packed(%{{.+}}: tensor<?x64xf32>, %{{.+}}: tensor<4x2x64x64xbf16>, %{{.+}}: tensor<4x1x96x64xbf16>)
// CHECK:         moe.expert {{.+}} weights(%{{.+}}, %{{.+}} : tensor<4x2x64x64xbf16>, tensor<4x1x96x64xbf16>)
// CHECK-SAME:      attributes {weight_layouts = [#moe.packed<panel = 64, storage = bf16>, #moe.packed<panel = 64, storage = bf16>]}
// CHECK:         ^bb0(%{{.+}}: tensor<?x64xf32>, %{{.+}}: tensor<64x96xf32>, %{{.+}}: tensor<96x64xf32>):

// The fused tiles multiply f32 rows by the bf16 panels into f32 (the
// batch_matmul widens each panel element); no copy of the weights is
// widened.
// FUSED-LABEL: func.func @layer_packed
// FUSED-NOT:     arith.extf
// FUSED:         linalg.batch_matmul {{.+}} {moe.expert_tile, moe.packed_panel = 64 : i64}
// FUSED-SAME:      ins(%{{.+}}, %{{.+}} : tensor<?x64x4xf32>, tensor<64x64xbf16>) outs(%{{.+}} : tensor<?x4x64xf32>)
// FUSED:         linalg.batch_matmul {{.+}} {moe.expert_tile, moe.packed_panel = 64 : i64}
// FUSED-SAME:      ins(%{{.+}}, %{{.+}} : tensor<?x96x4xf32>, tensor<96x64xbf16>) outs(%{{.+}} : tensor<?x4x64xf32>)

// The reference lowering unpacks each expert's slice and widens it to the
// body's f32 matrix.
// REF-LABEL: func.func @layer_packed
// REF:         linalg.transpose ins(%{{.+}} : tensor<2x64x64xbf16>) {{.+}} permutation = [1, 0, 2]
// REF:         %[[W:.+]] = linalg.generic {{.+}} ins(%{{.+}} : tensor<64x96xbf16>) outs(%{{.+}} : tensor<64x96xf32>)
// REF:           arith.extf %{{.+}} : bf16 to f32
// REF:         linalg.matmul ins(%{{.+}}, %[[W]] : tensor<?x64xf32>, tensor<64x96xf32>)
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
