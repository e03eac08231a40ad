func.func @moe_layer(%x: tensor<55x16xf32>, %router: tensor<16x32xf32>, %w_gate: tensor<32x16x2xf32>, %w_up: tensor<32x16x2xf32>, %w_down: tensor<32x2x16xf32>) -> tensor<55x16xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %le = tensor.empty() : tensor<55x32xf32>
  %l0 = linalg.fill ins(%zero : f32) outs(%le : tensor<55x32xf32>) -> tensor<55x32xf32>
  %logits = linalg.matmul ins(%x, %router : tensor<55x16xf32>, tensor<16x32xf32>) outs(%l0 : tensor<55x32xf32>) -> tensor<55x32xf32>
  %ids, %gates = moe.route #moe.token_choice<top_k = 3, capacity_factor = 1e-05, score = sigmoid, normalize = true, routed_scaling_factor = 2.5> %logits : tensor<55x32xf32> -> tensor<32x1xi32>, tensor<32x1xf32>
  %xe = moe.dispatch %x indices(%ids : tensor<32x1xi32>) : tensor<55x16xf32> -> tensor<32x1x16xf32>
  %ye = moe.expert %xe weights(%w_gate, %w_up, %w_down : tensor<32x16x2xf32>, tensor<32x16x2xf32>, tensor<32x2x16xf32>) : tensor<32x1x16xf32> -> tensor<32x1x16xf32> {
  ^bb0(%rows: tensor<1x16xf32>, %eg: tensor<16x2xf32>, %eu: tensor<16x2xf32>, %ed: tensor<2x16xf32>):
    %i0 = arith.constant 0 : index
    %f0 = arith.constant 0.0 : f32
    %he = tensor.empty() : tensor<1x2xf32>
    %h0 = linalg.fill ins(%f0 : f32) outs(%he : tensor<1x2xf32>) -> tensor<1x2xf32>
    %hd = tensor.empty() : tensor<1x2xf32>
    %g = linalg.matmul ins(%rows, %eg : tensor<1x16xf32>, tensor<16x2xf32>) outs(%h0 : tensor<1x2xf32>) -> tensor<1x2xf32>
    %u = linalg.matmul ins(%rows, %eu : tensor<1x16xf32>, tensor<16x2xf32>) outs(%h0 : tensor<1x2xf32>) -> tensor<1x2xf32>
    %h = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%g, %u : tensor<1x2xf32>, tensor<1x2xf32>) outs(%hd : tensor<1x2xf32>) {
      ^bb0(%a: f32, %b: f32, %unused: f32):
        %one = arith.constant 1.0 : f32
        %neg = arith.negf %a : f32
        %exp = math.exp %neg : f32
        %den = arith.addf %one, %exp : f32
        %act = arith.divf %a, %den : f32
        %prod = arith.mulf %act, %b : f32
        linalg.yield %prod : f32
    } -> tensor<1x2xf32>
    %oe = tensor.empty() : tensor<1x16xf32>
    %o0 = linalg.fill ins(%f0 : f32) outs(%oe : tensor<1x16xf32>) -> tensor<1x16xf32>
    %o = linalg.matmul ins(%h, %ed : tensor<1x2xf32>, tensor<2x16xf32>) outs(%o0 : tensor<1x16xf32>) -> tensor<1x16xf32>
    moe.yield %o : tensor<1x16xf32>
  }
  %init = tensor.empty() : tensor<55x16xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%init : tensor<55x16xf32>) -> tensor<55x16xf32>
  %y = moe.combine %ye indices(%ids : tensor<32x1xi32>) weights(%gates : tensor<32x1xf32>) into %acc : tensor<32x1x16xf32> -> tensor<55x16xf32>
  return %y : tensor<55x16xf32>
}
