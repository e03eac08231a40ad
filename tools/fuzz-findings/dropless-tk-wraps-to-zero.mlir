func.func @route(%logits: tensor<4611686018427387904x8xf32>) -> (tensor<0xi32>, tensor<0xf32>, tensor<9xi32>) {
  %r0, %r1, %r2 = moe.route #moe.token_choice<top_k = 4> %logits : tensor<4611686018427387904x8xf32> -> tensor<0xi32>, tensor<0xf32>, tensor<9xi32>
  return %r0, %r1, %r2 : tensor<0xi32>, tensor<0xf32>, tensor<9xi32>
}
