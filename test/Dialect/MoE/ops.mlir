// RUN: moe-opt %s -split-input-file | moe-opt -split-input-file | FileCheck %s
// RUN: moe-opt %s -split-input-file -mlir-print-op-generic | moe-opt -split-input-file | FileCheck %s

// Round trip of every op and every routing policy, in the custom and the
// generic form; static and dynamic token counts; f32, f16 and bf16.

// A whole token-choice layer with capacity: C = ceil(1.0 * 2 * 16 / 4) = 8.
// CHECK-LABEL: func.func @token_choice_capacity_layer
// CHECK-SAME:    (%[[X:.+]]: tensor<16x8xf32>, %[[WG:.+]]: tensor<8x4xf32>, %[[W1:.+]]: tensor<4x8x16xf32>, %[[W2:.+]]: tensor<4x16x8xf32>)
// CHECK:         %[[LOGITS:.+]] = linalg.matmul
// CHECK:         %[[IDS:.+]], %[[GATES:.+]] = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.0> %[[LOGITS]] : tensor<16x4xf32> -> tensor<4x8xi32>, tensor<4x8xf32>
// CHECK:         %[[XE:.+]] = moe.dispatch %[[X]] indices(%[[IDS]] : tensor<4x8xi32>) : tensor<16x8xf32> -> tensor<4x8x8xf32>
// CHECK:         %[[YE:.+]] = moe.expert %[[XE]] weights(%[[W1]], %[[W2]] : tensor<4x8x16xf32>, tensor<4x16x8xf32>) : tensor<4x8x8xf32> -> tensor<4x8x8xf32> {
// CHECK-NEXT:    ^bb0(%[[ROWS:.+]]: tensor<8x8xf32>, %[[A:.+]]: tensor<8x16xf32>, %[[B:.+]]: tensor<16x8xf32>):
// CHECK:           linalg.matmul ins(%[[ROWS]], %[[A]] : tensor<8x8xf32>, tensor<8x16xf32>)
// CHECK:           linalg.map
// CHECK:           %[[OUT:.+]] = linalg.matmul
// CHECK:           moe.yield %[[OUT]] : tensor<8x8xf32>
// CHECK-NEXT:    }
// CHECK:         %[[Y:.+]] = moe.combine %[[YE]] indices(%[[IDS]] : tensor<4x8xi32>) weights(%[[GATES]] : tensor<4x8xf32>) into %{{.+}} : tensor<4x8x8xf32> -> tensor<16x8xf32>
// CHECK:         return %[[Y]]
func.func @token_choice_capacity_layer(%x: tensor<16x8xf32>, %wg: tensor<8x4xf32>,
                                       %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) -> tensor<16x8xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<16x4xf32>
  %l0 = linalg.fill ins(%zero : f32) outs(%e : tensor<16x4xf32>) -> tensor<16x4xf32>
  %logits = linalg.matmul ins(%x, %wg : tensor<16x8xf32>, tensor<8x4xf32>) outs(%l0 : tensor<16x4xf32>) -> tensor<16x4xf32>
  %ids, %gates = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.0> %logits
      : tensor<16x4xf32> -> tensor<4x8xi32>, tensor<4x8xf32>
  %xe = moe.dispatch %x indices(%ids : tensor<4x8xi32>) : tensor<16x8xf32> -> tensor<4x8x8xf32>
  %ye = moe.expert %xe weights(%w1, %w2 : tensor<4x8x16xf32>, tensor<4x16x8xf32>)
      : tensor<4x8x8xf32> -> tensor<4x8x8xf32> {
  ^bb0(%rows: tensor<8x8xf32>, %a: tensor<8x16xf32>, %b: tensor<16x8xf32>):
    %c0 = arith.constant 0.0 : f32
    %he = tensor.empty() : tensor<8x16xf32>
    %h0 = linalg.fill ins(%c0 : f32) outs(%he : tensor<8x16xf32>) -> tensor<8x16xf32>
    %h = linalg.matmul ins(%rows, %a : tensor<8x8xf32>, tensor<8x16xf32>) outs(%h0 : tensor<8x16xf32>) -> tensor<8x16xf32>
    %relu = linalg.map ins(%h : tensor<8x16xf32>) outs(%he : tensor<8x16xf32>)
      (%v: f32, %unused: f32) {
        %m = arith.maximumf %v, %c0 : f32
        linalg.yield %m : f32
      }
    %oe = tensor.empty() : tensor<8x8xf32>
    %o0 = linalg.fill ins(%c0 : f32) outs(%oe : tensor<8x8xf32>) -> tensor<8x8xf32>
    %out = linalg.matmul ins(%relu, %b : tensor<8x16xf32>, tensor<16x8xf32>) outs(%o0 : tensor<8x8xf32>) -> tensor<8x8xf32>
    moe.yield %out : tensor<8x8xf32>
  }
  %ye0 = tensor.empty() : tensor<16x8xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%ye0 : tensor<16x8xf32>) -> tensor<16x8xf32>
  %y = moe.combine %ye indices(%ids : tensor<4x8xi32>) weights(%gates : tensor<4x8xf32>) into %acc
      : tensor<4x8x8xf32> -> tensor<16x8xf32>
  return %y : tensor<16x8xf32>
}

// -----

// Every token-choice option; defaults are elided when printed.
// CHECK-LABEL: func.func @token_choice_options
// CHECK:         moe.route #moe.token_choice<top_k = 2> %{{.+}} : tensor<10x8xf32> -> tensor<20xi32>, tensor<20xf32>, tensor<9xi32>
// CHECK:         moe.route #moe.token_choice<top_k = 1, capacity_factor = 1.25, score = sigmoid, normalize = true, order = priority, routed_scaling_factor = 2.5> %{{.+}} : tensor<10x8xf32> -> tensor<8x2xi32>, tensor<8x2xf32>
// CHECK:         moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.0e-05> %{{.+}} : tensor<10x8xf32> -> tensor<8x1xi32>, tensor<8x1xf32>
// CHECK:         moe.route #moe.token_choice<top_k = 2, capacity_factor = 3.0> %{{.+}} : tensor<10x8xf32> -> tensor<8x8xi64>, tensor<8x8xf32>
func.func @token_choice_options(%s: tensor<10x8xf32>) {
  %0:3 = moe.route #moe.token_choice<top_k = 2, score = softmax, normalize = false, order = position, n_group = 1, routed_scaling_factor = 1.0> %s
      : tensor<10x8xf32> -> tensor<20xi32>, tensor<20xf32>, tensor<9xi32>
  // C = ceil(1.25 * 1 * 10 / 8) = 2.
  %1:2 = moe.route #moe.token_choice<order = priority, routed_scaling_factor = 2.5, normalize = true, score = sigmoid, capacity_factor = 1.25, top_k = 1> %s
      : tensor<10x8xf32> -> tensor<8x2xi32>, tensor<8x2xf32>
  // A tiny factor still leaves one slot: C = ceil(1e-5 * 2 * 10 / 8) = 1.
  %2:2 = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.0e-5> %s
      : tensor<10x8xf32> -> tensor<8x1xi32>, tensor<8x1xf32>
  // An integer literal is a factor too; C = ceil(3 * 2 * 10 / 8) = 8. i64 ids.
  %3:2 = moe.route #moe.token_choice<top_k = 2, capacity_factor = 3> %s
      : tensor<10x8xf32> -> tensor<8x8xi64>, tensor<8x8xf32>
  return
}

// -----

// Dropless token choice with a dynamic token count: the grouped layout.
// CHECK-LABEL: func.func @dropless_dynamic
// CHECK:         %[[IDS:.+]], %[[GATES:.+]], %[[OFFSETS:.+]] = moe.route #moe.token_choice<top_k = 2, normalize = true> %{{.+}} : tensor<?x4xf16> -> tensor<?xi32>, tensor<?xf16>, tensor<5xi32>
// CHECK:         %[[XG:.+]] = moe.dispatch %{{.+}} indices(%[[IDS]] : tensor<?xi32>) : tensor<?x8xf16> -> tensor<?x8xf16>
// CHECK:         %[[YG:.+]] = moe.expert %[[XG]] offsets(%[[OFFSETS]] : tensor<5xi32>) weights(%{{.+}} : tensor<4x8x8xf16>) : tensor<?x8xf16> -> tensor<?x8xf16> {
// CHECK-NEXT:    ^bb0(%{{.+}}: tensor<?x8xf16>, %{{.+}}: tensor<8x8xf16>):
// CHECK:         moe.combine %[[YG]] indices(%[[IDS]] : tensor<?xi32>) weights(%[[GATES]] : tensor<?xf16>) into %{{.+}} : tensor<?x8xf16> -> tensor<?x8xf16>
func.func @dropless_dynamic(%x: tensor<?x8xf16>, %logits: tensor<?x4xf16>, %w: tensor<4x8x8xf16>,
                            %acc: tensor<?x8xf16>) -> tensor<?x8xf16> {
  %ids, %gates, %offsets = moe.route #moe.token_choice<top_k = 2, normalize = true> %logits
      : tensor<?x4xf16> -> tensor<?xi32>, tensor<?xf16>, tensor<5xi32>
  %xg = moe.dispatch %x indices(%ids : tensor<?xi32>) : tensor<?x8xf16> -> tensor<?x8xf16>
  %yg = moe.expert %xg offsets(%offsets : tensor<5xi32>) weights(%w : tensor<4x8x8xf16>)
      : tensor<?x8xf16> -> tensor<?x8xf16> {
  ^bb0(%rows: tensor<?x8xf16>, %a: tensor<8x8xf16>):
    %c0 = arith.constant 0 : index
    %zero = arith.constant 0.0 : f16
    %n = tensor.dim %rows, %c0 : tensor<?x8xf16>
    %e = tensor.empty(%n) : tensor<?x8xf16>
    %f = linalg.fill ins(%zero : f16) outs(%e : tensor<?x8xf16>) -> tensor<?x8xf16>
    %o = linalg.matmul ins(%rows, %a : tensor<?x8xf16>, tensor<8x8xf16>) outs(%f : tensor<?x8xf16>) -> tensor<?x8xf16>
    moe.yield %o : tensor<?x8xf16>
  }
  %y = moe.combine %yg indices(%ids : tensor<?xi32>) weights(%gates : tensor<?xf16>) into %acc
      : tensor<?x8xf16> -> tensor<?x8xf16>
  return %y : tensor<?x8xf16>
}

// -----

// Expert choice, static and dynamic T: C = ceil(2.0 * 12 / 4) = 6.
// CHECK-LABEL: func.func @expert_choice
// CHECK:         %[[IDS:.+]], %[[GATES:.+]] = moe.route #moe.expert_choice<capacity_factor = 2.0> %{{.+}} : tensor<12x4xbf16> -> tensor<4x6xi32>, tensor<4x6xbf16>
// CHECK:         moe.dispatch %{{.+}} indices(%[[IDS]] : tensor<4x6xi32>) : tensor<12x16xbf16> -> tensor<4x6x16xbf16>
// CHECK:         moe.route #moe.expert_choice<capacity_factor = 0.5, normalize = true> %{{.+}} : tensor<?x4xf32> -> tensor<4x?xi64>, tensor<4x?xf32>
func.func @expert_choice(%x: tensor<12x16xbf16>, %logits: tensor<12x4xbf16>, %dyn: tensor<?x4xf32>)
    -> (tensor<4x6x16xbf16>, tensor<4x?xi64>) {
  %ids, %gates = moe.route #moe.expert_choice<capacity_factor = 2.0> %logits
      : tensor<12x4xbf16> -> tensor<4x6xi32>, tensor<4x6xbf16>
  %xe = moe.dispatch %x indices(%ids : tensor<4x6xi32>) : tensor<12x16xbf16> -> tensor<4x6x16xbf16>
  %dids, %dgates = moe.route #moe.expert_choice<capacity_factor = 0.5, normalize = true> %dyn
      : tensor<?x4xf32> -> tensor<4x?xi64>, tensor<4x?xf32>
  return %xe, %dids : tensor<4x6x16xbf16>, tensor<4x?xi64>
}

// -----

// Expert choice with more slots than tokens: C = ceil(8.0 * 3 / 2) = 12 > T.
// CHECK-LABEL: func.func @expert_choice_more_slots_than_tokens
// CHECK:         moe.route #moe.expert_choice<capacity_factor = 8.0> %{{.+}} : tensor<3x2xf32> -> tensor<2x12xi32>, tensor<2x12xf32>
func.func @expert_choice_more_slots_than_tokens(%logits: tensor<3x2xf32>) -> tensor<2x12xi32> {
  %ids, %gates = moe.route #moe.expert_choice<capacity_factor = 8.0> %logits
      : tensor<3x2xf32> -> tensor<2x12xi32>, tensor<2x12xf32>
  return %ids : tensor<2x12xi32>
}

// -----

// DeepSeek-V3-style grouped routing with a score bias and i64 ids.
// CHECK-LABEL: func.func @grouped_deepseek
// CHECK:         moe.route #moe.token_choice<top_k = 4, score = sigmoid, normalize = true, n_group = 4, topk_group = 2, routed_scaling_factor = 2.5> %{{.+}} bias(%{{.+}} : tensor<16xf32>) : tensor<?x16xf32> -> tensor<?xi64>, tensor<?xf32>, tensor<17xi64>
// CHECK:         moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.5, n_group = 4> %{{.+}} bias(%{{.+}} : tensor<16xf32>) : tensor<?x16xf32> -> tensor<16x?xi32>, tensor<16x?xf32>
func.func @grouped_deepseek(%logits: tensor<?x16xf32>, %bias: tensor<16xf32>) {
  %ids, %gates, %offsets = moe.route
      #moe.token_choice<top_k = 4, score = sigmoid, normalize = true, n_group = 4,
                        topk_group = 2, routed_scaling_factor = 2.5>
      %logits bias(%bias : tensor<16xf32>)
      : tensor<?x16xf32> -> tensor<?xi64>, tensor<?xf32>, tensor<17xi64>
  // Groups without topk_group keep every group.
  %cids, %cgates = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.5, n_group = 4>
      %logits bias(%bias : tensor<16xf32>)
      : tensor<?x16xf32> -> tensor<16x?xi32>, tensor<16x?xf32>
  return
}

// -----

// A whole Soft MoE layer: E = 4 experts with S = 2 slots each.
// CHECK-LABEL: func.func @soft_layer
// CHECK:         %[[D:.+]], %[[C:.+]] = moe.route #moe.soft<slots_per_expert = 2> %{{.+}} : tensor<?x8xbf16> -> tensor<?x8xbf16>, tensor<?x8xbf16>
// CHECK:         %[[XS:.+]] = moe.dispatch %{{.+}} weights(%[[D]] : tensor<?x8xbf16>) : tensor<?x16xbf16> -> tensor<4x2x16xbf16>
// CHECK:         %[[YS:.+]] = moe.expert %[[XS]] weights(%{{.+}} : tensor<4x16x16xbf16>) : tensor<4x2x16xbf16> -> tensor<4x2x16xbf16> {
// CHECK-NEXT:    ^bb0(%{{.+}}: tensor<2x16xbf16>, %{{.+}}: tensor<16x16xbf16>):
// CHECK:         moe.combine %[[YS]] weights(%[[C]] : tensor<?x8xbf16>) into %{{.+}} : tensor<4x2x16xbf16> -> tensor<?x16xbf16>
func.func @soft_layer(%x: tensor<?x16xbf16>, %logits: tensor<?x8xbf16>, %w: tensor<4x16x16xbf16>,
                      %residual: tensor<?x16xbf16>) -> tensor<?x16xbf16> {
  %d, %c = moe.route #moe.soft<slots_per_expert = 2> %logits
      : tensor<?x8xbf16> -> tensor<?x8xbf16>, tensor<?x8xbf16>
  %xs = moe.dispatch %x weights(%d : tensor<?x8xbf16>) : tensor<?x16xbf16> -> tensor<4x2x16xbf16>
  %ys = moe.expert %xs weights(%w : tensor<4x16x16xbf16>) : tensor<4x2x16xbf16> -> tensor<4x2x16xbf16> {
  ^bb0(%rows: tensor<2x16xbf16>, %a: tensor<16x16xbf16>):
    %zero = arith.constant 0.0 : bf16
    %e = tensor.empty() : tensor<2x16xbf16>
    %f = linalg.fill ins(%zero : bf16) outs(%e : tensor<2x16xbf16>) -> tensor<2x16xbf16>
    %o = linalg.matmul ins(%rows, %a : tensor<2x16xbf16>, tensor<16x16xbf16>) outs(%f : tensor<2x16xbf16>) -> tensor<2x16xbf16>
    moe.yield %o : tensor<2x16xbf16>
  }
  %y = moe.combine %ys weights(%c : tensor<?x8xbf16>) into %residual
      : tensor<4x2x16xbf16> -> tensor<?x16xbf16>
  return %y : tensor<?x16xbf16>
}

// -----

// An expert without weights (identity) and a gated SwiGLU expert with three
// weights whose output dim differs from its input dim; expert outputs in a
// narrower type than the f32 destination.
// CHECK-LABEL: func.func @expert_bodies
// CHECK:         moe.expert %{{.+}} : tensor<2x3x4xf16> -> tensor<2x3x4xf16> {
// CHECK-NEXT:    ^bb0(%[[R:.+]]: tensor<3x4xf16>):
// CHECK-NEXT:      moe.yield %[[R]] : tensor<3x4xf16>
// CHECK:         moe.expert %{{.+}} weights(%{{.+}}, %{{.+}}, %{{.+}} : tensor<2x4x6xf16>, tensor<2x4x6xf16>, tensor<2x6x5xf16>) : tensor<2x3x4xf16> -> tensor<2x3x5xf16> {
// CHECK:         moe.combine %{{.+}} indices(%{{.+}} : tensor<2x3xi32>) weights(%{{.+}} : tensor<2x3xf32>) into %{{.+}} : tensor<2x3x5xf16> -> tensor<7x5xf32>
func.func @expert_bodies(%xe: tensor<2x3x4xf16>, %wg: tensor<2x4x6xf16>, %wu: tensor<2x4x6xf16>,
                         %wd: tensor<2x6x5xf16>, %ids: tensor<2x3xi32>, %gates: tensor<2x3xf32>,
                         %acc: tensor<7x5xf32>) -> (tensor<2x3x4xf16>, tensor<7x5xf32>) {
  %same = moe.expert %xe : tensor<2x3x4xf16> -> tensor<2x3x4xf16> {
  ^bb0(%rows: tensor<3x4xf16>):
    moe.yield %rows : tensor<3x4xf16>
  }
  %ye = moe.expert %xe weights(%wg, %wu, %wd : tensor<2x4x6xf16>, tensor<2x4x6xf16>, tensor<2x6x5xf16>)
      : tensor<2x3x4xf16> -> tensor<2x3x5xf16> {
  ^bb0(%rows: tensor<3x4xf16>, %g: tensor<4x6xf16>, %u: tensor<4x6xf16>, %d: tensor<6x5xf16>):
    %zero = arith.constant 0.0 : f16
    %he = tensor.empty() : tensor<3x6xf16>
    %h0 = linalg.fill ins(%zero : f16) outs(%he : tensor<3x6xf16>) -> tensor<3x6xf16>
    %hg = linalg.matmul ins(%rows, %g : tensor<3x4xf16>, tensor<4x6xf16>) outs(%h0 : tensor<3x6xf16>) -> tensor<3x6xf16>
    %hu = linalg.matmul ins(%rows, %u : tensor<3x4xf16>, tensor<4x6xf16>) outs(%h0 : tensor<3x6xf16>) -> tensor<3x6xf16>
    %act = linalg.map ins(%hg, %hu : tensor<3x6xf16>, tensor<3x6xf16>) outs(%he : tensor<3x6xf16>)
      (%a: f16, %b: f16, %unused: f16) {
        %neg = arith.negf %a : f16
        %exp = math.exp %neg : f16
        %one = arith.constant 1.0 : f16
        %den = arith.addf %one, %exp : f16
        %silu = arith.divf %a, %den : f16
        %prod = arith.mulf %silu, %b : f16
        linalg.yield %prod : f16
      }
    %oe = tensor.empty() : tensor<3x5xf16>
    %o0 = linalg.fill ins(%zero : f16) outs(%oe : tensor<3x5xf16>) -> tensor<3x5xf16>
    %o = linalg.matmul ins(%act, %d : tensor<3x6xf16>, tensor<6x5xf16>) outs(%o0 : tensor<3x5xf16>) -> tensor<3x5xf16>
    moe.yield %o : tensor<3x5xf16>
  }
  %y = moe.combine %ye indices(%ids : tensor<2x3xi32>) weights(%gates : tensor<2x3xf32>) into %acc
      : tensor<2x3x5xf16> -> tensor<7x5xf32>
  return %same, %y : tensor<2x3x4xf16>, tensor<7x5xf32>
}

// -----

// Hexadecimal literals of a factor are the bits of an f64 (0x3FF4... is
// 1.25), integers are whole numbers; both print as float literals.
// CHECK-LABEL: func.func @factor_literals
// CHECK:         moe.route #moe.token_choice<top_k = 1, capacity_factor = 1.25, routed_scaling_factor = 1.0e+23> %{{.+}} : tensor<4x4xf32> -> tensor<4x2xi32>, tensor<4x2xf32>
func.func @factor_literals(%logits: tensor<4x4xf32>) -> tensor<4x2xi32> {
  %ids, %gates = moe.route #moe.token_choice<top_k = 1, capacity_factor = 0x3FF4000000000000,
                                             routed_scaling_factor = 100000000000000000000000> %logits
      : tensor<4x4xf32> -> tensor<4x2xi32>, tensor<4x2xf32>
  return %ids : tensor<4x2xi32>
}
