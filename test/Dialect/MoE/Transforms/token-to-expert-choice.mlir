// RUN: moe-opt %s -split-input-file -moe-token-to-expert-choice -verify-diagnostics | FileCheck %s
// RUN: moe-opt %s -split-input-file -moe-token-to-expert-choice=keep-normalize=true 2>/dev/null | FileCheck %s --check-prefix=KEEP
// RUN: not moe-opt %s -split-input-file -moe-token-to-expert-choice=capacity-factor=-1.0 2>&1 | FileCheck %s --check-prefix=BADOPT
// BADOPT: error: moe-token-to-expert-choice: capacity-factor must be a finite positive number (or 0 for the default), got -1.0


// Capacity layout, default capacity: C = ceil(1.25 * 2 * T / E) stays the
// same (capacity_factor_EC = 2 * 1.25), so only the route changes.
// CHECK-LABEL: func.func @capacity_keeps_c
// CHECK:         %[[IDS:.+]], %[[GATES:.+]] = moe.route #moe.expert_choice<capacity_factor = 2.5> %{{.+}} : tensor<16x8xf32> -> tensor<8x5xi32>, tensor<8x5xf32>
// CHECK:         %[[XE:.+]] = moe.dispatch %{{.+}} indices(%[[IDS]] : tensor<8x5xi32>) : tensor<16x4xf32> -> tensor<8x5x4xf32>
// CHECK:         %[[YE:.+]] = moe.expert %[[XE]] : tensor<8x5x4xf32> -> tensor<8x5x4xf32>
// CHECK:         moe.combine %[[YE]] indices(%[[IDS]] : tensor<8x5xi32>) weights(%[[GATES]] : tensor<8x5xf32>)
// CHECK-NOT:     token_choice
func.func @capacity_keeps_c(%x: tensor<16x4xf32>, %s: tensor<16x8xf32>, %acc: tensor<16x4xf32>) -> tensor<16x4xf32> {
  %ids, %gates = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.25> %s
      : tensor<16x8xf32> -> tensor<8x5xi32>, tensor<8x5xf32>
  %xe = moe.dispatch %x indices(%ids : tensor<8x5xi32>) : tensor<16x4xf32> -> tensor<8x5x4xf32>
  %ye = moe.expert %xe : tensor<8x5x4xf32> -> tensor<8x5x4xf32> {
  ^bb0(%r: tensor<5x4xf32>):
    moe.yield %r : tensor<5x4xf32>
  }
  %y = moe.combine %ye indices(%ids : tensor<8x5xi32>) weights(%gates : tensor<8x5xf32>) into %acc
      : tensor<8x5x4xf32> -> tensor<16x4xf32>
  return %y : tensor<16x4xf32>
}

// -----

// Dropless with a static T: the grouped layout [T*k] becomes the capacity
// layout [E, C] with C = ceil(2 * 16 / 8) = 4; the expert body, written for
// a dynamic row count, receives its 4 rows through a tensor.cast. The
// normalization is dropped (remark) unless keep-normalize is set.
// CHECK-LABEL: func.func @dropless
// CHECK:         %[[IDS:.+]], %[[GATES:.+]] = moe.route #moe.expert_choice<capacity_factor = 2.0> %{{.+}} : tensor<16x8xf32> -> tensor<8x4xi32>, tensor<8x4xf32>
// CHECK:         %[[XE:.+]] = moe.dispatch %{{.+}} indices(%[[IDS]] : tensor<8x4xi32>) : tensor<16x4xf32> -> tensor<8x4x4xf32>
// CHECK:         %[[YE:.+]] = moe.expert %[[XE]] weights(%{{.+}} : tensor<8x4x4xf32>) : tensor<8x4x4xf32> -> tensor<8x4x4xf32> {
// CHECK-NEXT:    ^bb0(%[[ROWS:.+]]: tensor<4x4xf32>, %[[W:.+]]: tensor<4x4xf32>):
// CHECK-NEXT:      %[[DYN:.+]] = tensor.cast %[[ROWS]] : tensor<4x4xf32> to tensor<?x4xf32>
// CHECK:           %[[M:.+]] = linalg.matmul ins(%[[DYN]], %[[W]]
// CHECK:           %[[OUT:.+]] = tensor.cast %[[M]] : tensor<?x4xf32> to tensor<4x4xf32>
// CHECK-NEXT:      moe.yield %[[OUT]] : tensor<4x4xf32>
// CHECK:         moe.combine %[[YE]] indices(%[[IDS]] : tensor<8x4xi32>) weights(%[[GATES]] : tensor<8x4xf32>) into %{{.+}} : tensor<8x4x4xf32> -> tensor<16x4xf32>
// CHECK-NOT:     offsets
// KEEP-LABEL:  func.func @dropless
// KEEP:          moe.route #moe.expert_choice<capacity_factor = 2.0, normalize = true>
func.func @dropless(%x: tensor<16x4xf32>, %s: tensor<16x8xf32>, %w: tensor<8x4x4xf32>, %acc: tensor<16x4xf32>) -> tensor<16x4xf32> {
  // expected-remark @+1 {{converted to expert choice; dropped what it cannot express: normalize = true (pass keep-normalize=true to keep it as per-token normalization)}}
  %ids, %gates, %offsets = moe.route #moe.token_choice<top_k = 2, normalize = true> %s
      : tensor<16x8xf32> -> tensor<32xi32>, tensor<32xf32>, tensor<9xi32>
  %xg = moe.dispatch %x indices(%ids : tensor<32xi32>) : tensor<16x4xf32> -> tensor<32x4xf32>
  %yg = moe.expert %xg offsets(%offsets : tensor<9xi32>) weights(%w : tensor<8x4x4xf32>) : tensor<32x4xf32> -> tensor<32x4xf32> {
  ^bb0(%r: tensor<?x4xf32>, %a: tensor<4x4xf32>):
    %c0 = arith.constant 0 : index
    %z = arith.constant 0.0 : f32
    %n = tensor.dim %r, %c0 : tensor<?x4xf32>
    %e = tensor.empty(%n) : tensor<?x4xf32>
    %f = linalg.fill ins(%z : f32) outs(%e : tensor<?x4xf32>) -> tensor<?x4xf32>
    %m = linalg.matmul ins(%r, %a : tensor<?x4xf32>, tensor<4x4xf32>) outs(%f : tensor<?x4xf32>) -> tensor<?x4xf32>
    moe.yield %m : tensor<?x4xf32>
  }
  %y = moe.combine %yg indices(%ids : tensor<32xi32>) weights(%gates : tensor<32xf32>) into %acc
      : tensor<32x4xf32> -> tensor<16x4xf32>
  return %y : tensor<16x4xf32>
}

// -----

// What expert choice cannot express is listed in one remark; the bias
// operand goes away.
// CHECK-LABEL: func.func @deepseek
// CHECK:         moe.route #moe.expert_choice<capacity_factor = 4.0> %{{.+}} : tensor<?x16xf32> -> tensor<16x?xi64>, tensor<16x?xf32>
// CHECK-NOT:     bias
func.func @deepseek(%s: tensor<?x16xf32>, %b: tensor<16xf32>) -> (tensor<16x?xi64>, tensor<16x?xf32>) {
  // expected-remark @+1 {{converted to expert choice; dropped what it cannot express: sigmoid scores (expert choice uses softmax), grouped routing (n_group = 4, topk_group = 2), routed_scaling_factor = 2.5, order = priority (experts pick tokens)}}
  %ids, %gates = moe.route #moe.token_choice<top_k = 4, capacity_factor = 1.0, score = sigmoid, order = priority, n_group = 4, topk_group = 2, routed_scaling_factor = 2.5> %s bias(%b : tensor<16xf32>)
      : tensor<?x16xf32> -> tensor<16x?xi64>, tensor<16x?xf32>
  return %ids, %gates : tensor<16x?xi64>, tensor<16x?xf32>
}

// -----

// Other policies are left untouched, without a diagnostic.
// CHECK-LABEL: func.func @not_token_choice
// CHECK:         moe.route #moe.expert_choice<capacity_factor = 1.0>
// CHECK:         moe.route #moe.soft<slots_per_expert = 2>
func.func @not_token_choice(%s: tensor<8x4xf32>) -> (tensor<4x2xi32>, tensor<8x4xf32>) {
  %ids, %gates = moe.route #moe.expert_choice<capacity_factor = 1.0> %s : tensor<8x4xf32> -> tensor<4x2xi32>, tensor<4x2xf32>
  %d, %c = moe.route #moe.soft<slots_per_expert = 2> %s : tensor<8x4xf32> -> tensor<8x4xf32>, tensor<8x4xf32>
  return %ids, %d : tensor<4x2xi32>, tensor<8x4xf32>
}

// -----

// The layout changes and the offsets are returned: nothing can follow, the
// layer stays as it was.
// CHECK-LABEL: func.func @offsets_escape
// CHECK:         moe.route #moe.token_choice<top_k = 1>
func.func @offsets_escape(%s: tensor<8x4xf32>) -> tensor<5xi32> {
  // expected-remark @+1 {{not converted to expert choice: its offsets are used by 'func.return'}}
  %ids, %gates, %offsets = moe.route #moe.token_choice<top_k = 1> %s
      : tensor<8x4xf32> -> tensor<8xi32>, tensor<8xf32>, tensor<5xi32>
  return %offsets : tensor<5xi32>
}

