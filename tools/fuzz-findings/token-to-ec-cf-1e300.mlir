func.func @moe_layer(%x: tensor<1x24xf32>, %router: tensor<24x14xf32>, %bias: tensor<14xf32>, %w1: tensor<14x24x1xf32>, %w2: tensor<14x1x24xf32>) -> tensor<1x24xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %le = tensor.empty() : tensor<1x14xf32>
  %l0 = linalg.fill ins(%zero : f32) outs(%le : tensor<1x14xf32>) -> tensor<1x14xf32>
  %logits = linalg.matmul ins(%x, %router : tensor<1x24xf32>, tensor<24x14xf32>) outs(%l0 : tensor<1x14xf32>) -> tensor<1x14xf32>
  %ids, %gates = moe.route #moe.token_choice<top_k = 2, capacity_factor = 0.0101, score = sigmoid, normalize = true, n_group = 2, topk_group = 2, routed_scaling_factor = 2.5> %logits bias(%bias : tensor<14xf32>) : tensor<1x14xf32> -> tensor<14x1xi32>, tensor<14x1xf32>
  %xe = moe.dispatch %x indices(%ids : tensor<14x1xi32>) : tensor<1x24xf32> -> tensor<14x1x24xf32>
  %ye = moe.expert %xe weights(%w1, %w2 : tensor<14x24x1xf32>, tensor<14x1x24xf32>) : tensor<14x1x24xf32> -> tensor<14x1x24xf32> {
  ^bb0(%rows: tensor<1x24xf32>, %e1: tensor<24x1xf32>, %e2: tensor<1x24xf32>):
    %i0 = arith.constant 0 : index
    %f0 = arith.constant 0.0 : f32
    %he = tensor.empty() : tensor<1x1xf32>
    %h0 = linalg.fill ins(%f0 : f32) outs(%he : tensor<1x1xf32>) -> tensor<1x1xf32>
    %hd = tensor.empty() : tensor<1x1xf32>
    %pre = linalg.matmul ins(%rows, %e1 : tensor<1x24xf32>, tensor<24x1xf32>) outs(%h0 : tensor<1x1xf32>) -> tensor<1x1xf32>
    %h = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%pre : tensor<1x1xf32>) outs(%hd : tensor<1x1xf32>) {
      ^bb0(%a: f32, %unused: f32):
        %one = arith.constant 1.0 : f32
        %neg = arith.negf %a : f32
        %exp = math.exp %neg : f32
        %den = arith.addf %one, %exp : f32
        %act = arith.divf %a, %den : f32
        linalg.yield %act : f32
    } -> tensor<1x1xf32>
    %oe = tensor.empty() : tensor<1x24xf32>
    %o0 = linalg.fill ins(%f0 : f32) outs(%oe : tensor<1x24xf32>) -> tensor<1x24xf32>
    %o = linalg.matmul ins(%h, %e2 : tensor<1x1xf32>, tensor<1x24xf32>) outs(%o0 : tensor<1x24xf32>) -> tensor<1x24xf32>
    moe.yield %o : tensor<1x24xf32>
  }
  %init = tensor.empty() : tensor<1x24xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%init : tensor<1x24xf32>) -> tensor<1x24xf32>
  %y = moe.combine %ye indices(%ids : tensor<14x1xi32>) weights(%gates : tensor<14x1xf32>) into %acc : tensor<14x1x24xf32> -> tensor<1x24xf32>
  return %y : tensor<1x24xf32>
}
