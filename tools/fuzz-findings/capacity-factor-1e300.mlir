func.func @route(%logits: tensor<31x7xf32>) -> (tensor<7x1xi32>, tensor<7x1xf32>) {
  %r0, %r1 = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.0e300> %logits : tensor<31x7xf32> -> tensor<7x1xi32>, tensor<7x1xf32>
  return %r0, %r1 : tensor<7x1xi32>, tensor<7x1xf32>
}
