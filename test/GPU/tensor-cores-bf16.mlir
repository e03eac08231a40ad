// REQUIRES: nvptx-registered-target, ptxas
// A bf16 Mixtral-like layer (D = 64, H = 128, top-2 dropless, SwiGLU): the
// expert tile's three GEMMs run on tensor cores through NVVM's mma
// (m16n8k16, bf16 inputs, f32 accumulators), for sm_80 and sm_90a.

// RUN: rm -rf %t && moe-opt %s --moe-gpu-pipeline="chip=sm_80 format=isa" \
// RUN:   --moe-dump-gpu-objects=dir=%t/sm_80 -o /dev/null
// RUN: moe-opt %s --moe-gpu-pipeline="chip=sm_90a format=isa" \
// RUN:   --moe-dump-gpu-objects=dir=%t/sm_90a -o /dev/null
// RUN: cat %t/sm_80/*.ptx | FileCheck %s
// RUN: cat %t/sm_90a/*.ptx | FileCheck %s
// RUN: %python %S/ptxas-report.py %ptxas sm_80 %t/sm_80 | FileCheck %s --check-prefix=PTXAS
// RUN: %python %S/ptxas-report.py %ptxas sm_90a %t/sm_90a | FileCheck %s --check-prefix=PTXAS

// CHECK-COUNT-3: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// PTXAS: failed: 0
// PTXAS: spill bytes: 0, stack bytes: 0

func.func @bf16_layer(%x: tensor<?x64xbf16>, %router: tensor<64x4xbf16>, %w_gate: tensor<4x64x128xbf16>, %w_up: tensor<4x64x128xbf16>, %w_down: tensor<4x128x64xbf16>) -> tensor<?x64xbf16> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c0 : tensor<?x64xbf16>
  %le = tensor.empty(%t) : tensor<?x4xf32>
  %l0 = linalg.fill ins(%zero : f32) outs(%le : tensor<?x4xf32>) -> tensor<?x4xf32>
  %logits = linalg.matmul ins(%x, %router : tensor<?x64xbf16>, tensor<64x4xbf16>) outs(%l0 : tensor<?x4xf32>) -> tensor<?x4xf32>
  %ids, %gates, %offsets = moe.route #moe.token_choice<top_k = 2, normalize = true> %logits : tensor<?x4xf32> -> tensor<?xi32>, tensor<?xf32>, tensor<5xi32>
  %xe = moe.dispatch %x indices(%ids : tensor<?xi32>) : tensor<?x64xbf16> -> tensor<?x64xbf16>
  %ye = moe.expert %xe offsets(%offsets : tensor<5xi32>) weights(%w_gate, %w_up, %w_down : tensor<4x64x128xbf16>, tensor<4x64x128xbf16>, tensor<4x128x64xbf16>) : tensor<?x64xbf16> -> tensor<?x64xbf16> {
  ^bb0(%rows: tensor<?x64xbf16>, %eg: tensor<64x128xbf16>, %eu: tensor<64x128xbf16>, %ed: tensor<128x64xbf16>):
    %i0 = arith.constant 0 : index
    %f0 = arith.constant 0.0 : f32
    %n = tensor.dim %rows, %i0 : tensor<?x64xbf16>
    %he = tensor.empty(%n) : tensor<?x128xf32>
    %h0 = linalg.fill ins(%f0 : f32) outs(%he : tensor<?x128xf32>) -> tensor<?x128xf32>
    %hd = tensor.empty(%n) : tensor<?x128xbf16>
    %g = linalg.matmul ins(%rows, %eg : tensor<?x64xbf16>, tensor<64x128xbf16>) outs(%h0 : tensor<?x128xf32>) -> tensor<?x128xf32>
    %u = linalg.matmul ins(%rows, %eu : tensor<?x64xbf16>, tensor<64x128xbf16>) outs(%h0 : tensor<?x128xf32>) -> tensor<?x128xf32>
    %h = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%g, %u : tensor<?x128xf32>, tensor<?x128xf32>) outs(%hd : tensor<?x128xbf16>) {
      ^bb0(%a: f32, %b: f32, %unused: bf16):
        %one = arith.constant 1.0 : f32
        %neg = arith.negf %a : f32
        %exp = math.exp %neg : f32
        %den = arith.addf %one, %exp : f32
        %act = arith.divf %a, %den : f32
        %prod = arith.mulf %act, %b : f32
        %narrow = arith.truncf %prod : f32 to bf16
        linalg.yield %narrow : bf16
    } -> tensor<?x128xbf16>
    %oe = tensor.empty(%n) : tensor<?x64xf32>
    %o0 = linalg.fill ins(%f0 : f32) outs(%oe : tensor<?x64xf32>) -> tensor<?x64xf32>
    %o = linalg.matmul ins(%h, %ed : tensor<?x128xbf16>, tensor<128x64xbf16>) outs(%o0 : tensor<?x64xf32>) -> tensor<?x64xf32>
    %od = tensor.empty(%n) : tensor<?x64xbf16>
    %out = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%o : tensor<?x64xf32>) outs(%od : tensor<?x64xbf16>) {
      ^bb0(%a: f32, %unused: bf16):
        %narrow = arith.truncf %a : f32 to bf16
        linalg.yield %narrow : bf16
    } -> tensor<?x64xbf16>
    moe.yield %out : tensor<?x64xbf16>
  }
  %init = tensor.empty(%t) : tensor<?x64xbf16>
  %zero_dt = arith.constant 0.0 : bf16
  %acc = linalg.fill ins(%zero_dt : bf16) outs(%init : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  %y = moe.combine %ye indices(%ids : tensor<?xi32>) weights(%gates : tensor<?xf32>) into %acc : tensor<?x64xbf16> -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

