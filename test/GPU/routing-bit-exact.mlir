// REQUIRES: nvptx-registered-target, ptxas
// Routing kernels round like the CPU code and the NumPy reference: scores
// use the routing exp (IEEE multiplies and adds), never libdevice's
// ex2.approx; no multiply-add is contracted to an FMA; no flush to zero;
// division is IEEE (div.rn). Together with sequential sums this makes ids
// and gates bit-identical to the CPU (python/tests/test_routing.py checks
// the CPU and the emulated GPU mapping bit for bit against the reference).

// RUN: rm -rf %t && moe-opt %s --moe-gpu-pipeline="chip=sm_90 format=isa" \
// RUN:   --moe-dump-gpu-objects=dir=%t -o /dev/null
// RUN: cat %t/*.ptx | FileCheck %s --implicit-check-not=ex2. \
// RUN:   --implicit-check-not=fma. --implicit-check-not=.ftz --implicit-check-not=.approx
// RUN: %python %S/ptxas-report.py %ptxas sm_90 %t | FileCheck %s --check-prefix=PTXAS

// CHECK-DAG: div.rn.f32
// Maxima and ranks: a warp per result, lanes combined by butterfly shuffles
// (exact in any order).
// CHECK-DAG: shfl.sync.bfly.b32
// PTXAS: failed: 0
// PTXAS: spill bytes: 0, stack bytes: 0

func.func @route0(%logits: tensor<?x8xf32>) -> (tensor<8x?xi32>, tensor<8x?xf32>) {
  %r0, %r1 = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.25, normalize = true, order = priority> %logits : tensor<?x8xf32> -> tensor<8x?xi32>, tensor<8x?xf32>
  return %r0, %r1 : tensor<8x?xi32>, tensor<8x?xf32>
}

func.func @route1(%logits: tensor<?x16xf32>, %bias: tensor<16xf32>) -> (tensor<?xi32>, tensor<?xf32>, tensor<17xi32>) {
  %r0, %r1, %r2 = moe.route #moe.token_choice<top_k = 4, score = sigmoid, normalize = true, n_group = 4, topk_group = 2, routed_scaling_factor = 2.5> %logits bias(%bias : tensor<16xf32>) : tensor<?x16xf32> -> tensor<?xi32>, tensor<?xf32>, tensor<17xi32>
  return %r0, %r1, %r2 : tensor<?xi32>, tensor<?xf32>, tensor<17xi32>
}

func.func @route2(%logits: tensor<?x8xf32>) -> (tensor<8x?xi32>, tensor<8x?xf32>) {
  %r0, %r1 = moe.route #moe.expert_choice<capacity_factor = 2.0, normalize = true> %logits : tensor<?x8xf32> -> tensor<8x?xi32>, tensor<8x?xf32>
  return %r0, %r1 : tensor<8x?xi32>, tensor<8x?xf32>
}

func.func @route3(%logits: tensor<?x8xf32>) -> (tensor<?x8xf32>, tensor<?x8xf32>) {
  %r0, %r1 = moe.route #moe.soft<slots_per_expert = 2> %logits : tensor<?x8xf32> -> tensor<?x8xf32>, tensor<?x8xf32>
  return %r0, %r1 : tensor<?x8xf32>, tensor<?x8xf32>
}

func.func @route4(%logits: tensor<?x8xf32>) -> (tensor<?xi32>, tensor<?xf32>, tensor<9xi32>) {
  %r0, %r1, %r2 = moe.route #moe.token_choice<top_k = 2, normalize = true> %logits : tensor<?x8xf32> -> tensor<?xi32>, tensor<?xf32>, tensor<9xi32>
  return %r0, %r1, %r2 : tensor<?xi32>, tensor<?xf32>, tensor<9xi32>
}
