func.func @route(%logits: tensor<1x30xf32>) -> (tensor<1x30xf32>, tensor<1x30xf32>) {
  %r0, %r1 = moe.route #moe.soft<slots_per_expert = 2> %logits : tensor<1x30xf32> -> tensor<1x30xf32>, tensor<1x30xf32>
  return %r0, %r1 : tensor<1x30xf32>, tensor<1x30xf32>
}
