// RUN: moe-opt %s | moe-opt | FileCheck %s

// A Mixtral-like MoE layer (E = 8 experts, top-2 dropless token choice with
// renormalized gates, SwiGLU experts) at a small size: D = 64, H = 128 and a
// dynamic token count. This is the example the README's quick start prints.

// CHECK-LABEL: func.func @mixtral_layer
// CHECK:         %[[IDS:.+]], %[[GATES:.+]], %[[OFFSETS:.+]] = moe.route #moe.token_choice<top_k = 2, normalize = true> %{{.+}} : tensor<?x8xf32> -> tensor<?xi32>, tensor<?xf32>, tensor<9xi32>
// CHECK:         %[[XG:.+]] = moe.dispatch %{{.+}} indices(%[[IDS]] : tensor<?xi32>) : tensor<?x64xf32> -> tensor<?x64xf32>
// CHECK:         %[[YG:.+]] = moe.expert %[[XG]] offsets(%[[OFFSETS]] : tensor<9xi32>) weights(%{{.+}}, %{{.+}}, %{{.+}} : tensor<8x64x128xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>) : tensor<?x64xf32> -> tensor<?x64xf32> {
// CHECK:           moe.yield %{{.+}} : tensor<?x64xf32>
// CHECK:         moe.combine %[[YG]] indices(%[[IDS]] : tensor<?xi32>) weights(%[[GATES]] : tensor<?xf32>) into %{{.+}} : tensor<?x64xf32> -> tensor<?x64xf32>
func.func @mixtral_layer(%x: tensor<?x64xf32>, %router: tensor<64x8xf32>,
                         %w_gate: tensor<8x64x128xf32>, %w_up: tensor<8x64x128xf32>,
                         %w_down: tensor<8x128x64xf32>) -> tensor<?x64xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>

  // Router logits [T, E].
  %le = tensor.empty(%t) : tensor<?x8xf32>
  %l0 = linalg.fill ins(%zero : f32) outs(%le : tensor<?x8xf32>) -> tensor<?x8xf32>
  %logits = linalg.matmul ins(%x, %router : tensor<?x64xf32>, tensor<64x8xf32>)
                          outs(%l0 : tensor<?x8xf32>) -> tensor<?x8xf32>

  // Each token picks its top-2 experts; gates renormalized over the two.
  %ids, %gates, %offsets = moe.route #moe.token_choice<top_k = 2, normalize = true> %logits
      : tensor<?x8xf32> -> tensor<?xi32>, tensor<?xf32>, tensor<9xi32>

  // Token rows grouped by expert: [T*2, D].
  %xg = moe.dispatch %x indices(%ids : tensor<?xi32>) : tensor<?x64xf32> -> tensor<?x64xf32>

  // One SwiGLU expert: (silu(x Wg) * (x Wu)) Wd.
  %yg = moe.expert %xg offsets(%offsets : tensor<9xi32>)
      weights(%w_gate, %w_up, %w_down : tensor<8x64x128xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>)
      : tensor<?x64xf32> -> tensor<?x64xf32> {
  ^bb0(%rows: tensor<?x64xf32>, %wg: tensor<64x128xf32>, %wu: tensor<64x128xf32>, %wd: tensor<128x64xf32>):
    %i0 = arith.constant 0 : index
    %f0 = arith.constant 0.0 : f32
    %one = arith.constant 1.0 : f32
    %n = tensor.dim %rows, %i0 : tensor<?x64xf32>
    %he = tensor.empty(%n) : tensor<?x128xf32>
    %h0 = linalg.fill ins(%f0 : f32) outs(%he : tensor<?x128xf32>) -> tensor<?x128xf32>
    %g = linalg.matmul ins(%rows, %wg : tensor<?x64xf32>, tensor<64x128xf32>)
                       outs(%h0 : tensor<?x128xf32>) -> tensor<?x128xf32>
    %u = linalg.matmul ins(%rows, %wu : tensor<?x64xf32>, tensor<64x128xf32>)
                       outs(%h0 : tensor<?x128xf32>) -> tensor<?x128xf32>
    %h = linalg.map ins(%g, %u : tensor<?x128xf32>, tensor<?x128xf32>) outs(%he : tensor<?x128xf32>)
      (%a: f32, %b: f32, %unused: f32) {
        %neg = arith.negf %a : f32
        %exp = math.exp %neg : f32
        %den = arith.addf %one, %exp : f32
        %silu = arith.divf %a, %den : f32
        %prod = arith.mulf %silu, %b : f32
        linalg.yield %prod : f32
      }
    %oe = tensor.empty(%n) : tensor<?x64xf32>
    %o0 = linalg.fill ins(%f0 : f32) outs(%oe : tensor<?x64xf32>) -> tensor<?x64xf32>
    %out = linalg.matmul ins(%h, %wd : tensor<?x128xf32>, tensor<128x64xf32>)
                         outs(%o0 : tensor<?x64xf32>) -> tensor<?x64xf32>
    moe.yield %out : tensor<?x64xf32>
  }

  // Gate-weighted scatter-add back to the tokens.
  %ye = tensor.empty(%t) : tensor<?x64xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%ye : tensor<?x64xf32>) -> tensor<?x64xf32>
  %y = moe.combine %yg indices(%ids : tensor<?xi32>) weights(%gates : tensor<?xf32>) into %acc
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
