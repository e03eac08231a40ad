func.func @route(%logits: tensor<1x1xf32>) -> (tensor<1xi32>, tensor<1xf32>, tensor<2xi32>) {
  %r0, %r1, %r2 = moe.route #moe.token_choice<top_k = 1, score = sigmoid, normalize = true> %logits : tensor<1x1xf32> -> tensor<1xi32>, tensor<1xf32>, tensor<2xi32>
  return %r0, %r1, %r2 : tensor<1xi32>, tensor<1xf32>, tensor<2xi32>
}
