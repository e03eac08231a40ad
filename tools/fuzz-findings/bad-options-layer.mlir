func.func @moe_layer(%x: tensor<?x4xf32>, %router: tensor<4x4xf32>, %w1: tensor<4x4x8xf32>, %w2: tensor<4x8x4xf32>) -> tensor<?x4xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c0 : tensor<?x4xf32>
  %le = tensor.empty(%t) : tensor<?x4xf32>
  %l0 = linalg.fill ins(%zero : f32) outs(%le : tensor<?x4xf32>) -> tensor<?x4xf32>
  %logits = linalg.matmul ins(%x, %router : tensor<?x4xf32>, tensor<4x4xf32>) outs(%l0 : tensor<?x4xf32>) -> tensor<?x4xf32>
  %ids, %gates = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.0> %logits : tensor<?x4xf32> -> tensor<4x?xi32>, tensor<4x?xf32>
  %xe = moe.dispatch %x indices(%ids : tensor<4x?xi32>) : tensor<?x4xf32> -> tensor<4x?x4xf32>
  %ye = moe.expert %xe weights(%w1, %w2 : tensor<4x4x8xf32>, tensor<4x8x4xf32>) : tensor<4x?x4xf32> -> tensor<4x?x4xf32> {
  ^bb0(%rows: tensor<?x4xf32>, %e1: tensor<4x8xf32>, %e2: tensor<8x4xf32>):
    %i0 = arith.constant 0 : index
    %f0 = arith.constant 0.0 : f32
    %n = tensor.dim %rows, %i0 : tensor<?x4xf32>
    %he = tensor.empty(%n) : tensor<?x8xf32>
    %h0 = linalg.fill ins(%f0 : f32) outs(%he : tensor<?x8xf32>) -> tensor<?x8xf32>
    %hd = tensor.empty(%n) : tensor<?x8xf32>
    %pre = linalg.matmul ins(%rows, %e1 : tensor<?x4xf32>, tensor<4x8xf32>) outs(%h0 : tensor<?x8xf32>) -> tensor<?x8xf32>
    %h = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%pre : tensor<?x8xf32>) outs(%hd : tensor<?x8xf32>) {
      ^bb0(%a: f32, %unused: f32):
        %act = arith.maximumf %a, %f0 : f32
        linalg.yield %act : f32
    } -> tensor<?x8xf32>
    %oe = tensor.empty(%n) : tensor<?x4xf32>
    %o0 = linalg.fill ins(%f0 : f32) outs(%oe : tensor<?x4xf32>) -> tensor<?x4xf32>
    %o = linalg.matmul ins(%h, %e2 : tensor<?x8xf32>, tensor<8x4xf32>) outs(%o0 : tensor<?x4xf32>) -> tensor<?x4xf32>
    moe.yield %o : tensor<?x4xf32>
  }
  %init = tensor.empty(%t) : tensor<?x4xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%init : tensor<?x4xf32>) -> tensor<?x4xf32>
  %y = moe.combine %ye indices(%ids : tensor<4x?xi32>) weights(%gates : tensor<4x?xf32>) into %acc : tensor<4x?x4xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}
