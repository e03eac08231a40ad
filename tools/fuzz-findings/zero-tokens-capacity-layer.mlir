func.func @moe_layer(%x: tensor<0x3xf32>, %router: tensor<3x64xf32>, %w1: tensor<64x3x1xf32>, %w2: tensor<64x1x3xf32>) -> tensor<0x3xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %le = tensor.empty() : tensor<0x64xf32>
  %l0 = linalg.fill ins(%zero : f32) outs(%le : tensor<0x64xf32>) -> tensor<0x64xf32>
  %logits = linalg.matmul ins(%x, %router : tensor<0x3xf32>, tensor<3x64xf32>) outs(%l0 : tensor<0x64xf32>) -> tensor<0x64xf32>
  %ids, %gates = moe.route #moe.token_choice<top_k = 8, capacity_factor = 2.823, order = priority> %logits : tensor<0x64xf32> -> tensor<64x0xi32>, tensor<64x0xf32>
  %xe = moe.dispatch %x indices(%ids : tensor<64x0xi32>) : tensor<0x3xf32> -> tensor<64x0x3xf32>
  %ye = moe.expert %xe weights(%w1, %w2 : tensor<64x3x1xf32>, tensor<64x1x3xf32>) : tensor<64x0x3xf32> -> tensor<64x0x3xf32> {
  ^bb0(%rows: tensor<0x3xf32>, %e1: tensor<3x1xf32>, %e2: tensor<1x3xf32>):
    %i0 = arith.constant 0 : index
    %f0 = arith.constant 0.0 : f32
    %he = tensor.empty() : tensor<0x1xf32>
    %h0 = linalg.fill ins(%f0 : f32) outs(%he : tensor<0x1xf32>) -> tensor<0x1xf32>
    %hd = tensor.empty() : tensor<0x1xf32>
    %pre = linalg.matmul ins(%rows, %e1 : tensor<0x3xf32>, tensor<3x1xf32>) outs(%h0 : tensor<0x1xf32>) -> tensor<0x1xf32>
    %h = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%pre : tensor<0x1xf32>) outs(%hd : tensor<0x1xf32>) {
      ^bb0(%a: f32, %unused: f32):
        %act = arith.maximumf %a, %f0 : f32
        linalg.yield %act : f32
    } -> tensor<0x1xf32>
    %oe = tensor.empty() : tensor<0x3xf32>
    %o0 = linalg.fill ins(%f0 : f32) outs(%oe : tensor<0x3xf32>) -> tensor<0x3xf32>
    %o = linalg.matmul ins(%h, %e2 : tensor<0x1xf32>, tensor<1x3xf32>) outs(%o0 : tensor<0x3xf32>) -> tensor<0x3xf32>
    moe.yield %o : tensor<0x3xf32>
  }
  %init = tensor.empty() : tensor<0x3xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%init : tensor<0x3xf32>) -> tensor<0x3xf32>
  %y = moe.combine %ye indices(%ids : tensor<64x0xi32>) weights(%gates : tensor<64x0xf32>) into %acc : tensor<64x0x3xf32> -> tensor<0x3xf32>
  return %y : tensor<0x3xf32>
}
