// RUN: moe-opt %s -split-input-file -convert-moe-to-linalg | FileCheck %s

// Token choice with capacity: softmax, top-k as ranks, the choice gather,
// the runtime capacity C = ceil(2.0 * T / 4) in f64, and the sequential
// assignment loop (choices outer, tokens inner).
// CHECK-LABEL: func.func @capacity_dynamic
// CHECK-SAME:    (%[[S:.+]]: tensor<?x4xf32>)
// CHECK:         %[[T:.+]] = tensor.dim %[[S]], %{{.+}} : tensor<?x4xf32>
// CHECK:         %[[MAX:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]{{.*}} ins(%[[S]] : tensor<?x4xf32>)
// CHECK:           arith.maximumf
// CHECK:         %[[EXP:.+]] = linalg.generic {{.*}} ins(%[[S]], %[[MAX]] :
// CHECK:           arith.subf
// The routing exp (buildRoutingExp): NaN kept, input clamped, k = round(x /
// ln 2) by the 1.5 * 2^23 trick, polynomial, two power-of-two factors.
// CHECK:           arith.cmpf uno
// CHECK:           arith.maximumf
// CHECK:           arith.minimumf
// CHECK:           arith.addf %{{.+}}, %cst{{.*}} : f32
// CHECK:           arith.fptosi {{.*}} : f32 to i32
// CHECK:           arith.bitcast {{.*}} : i32 to f32
// CHECK:         %[[SUM:.+]] = linalg.generic {{.*}} ins(%[[EXP]] :
// CHECK:           arith.addf
// CHECK:         %[[P:.+]] = linalg.generic {{.*}} ins(%[[EXP]], %[[SUM]] :
// CHECK:           arith.divf
// The rank of each element counts its competitors by integer keys (the
// float order, -0 = +0, NaN lowest), in two loops whose count is carried (a
// register, not the output buffer): lower indices win ties, higher ones not.
// CHECK:         %[[KEYS:.+]] = linalg.generic {{.*}} ins(%[[P]] : tensor<?x4xf32>) outs(%{{.+}} : tensor<?x4xi32>)
// CHECK:           arith.bitcast %{{.+}} : f32 to i32
// CHECK:           arith.xori %{{.+}}, %c2147483647_i32
// CHECK:           arith.cmpf oeq
// CHECK:           arith.cmpf uno
// CHECK:           arith.select %{{.+}}, %c-2147483648_i32
// CHECK:         %[[RANK:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel"]{{.*}} outs(%{{.+}} : tensor<?x4xi32>)
// CHECK:           %[[SELF:.+]] = tensor.extract %[[KEYS]]
// CHECK:           %[[LOW:.+]] = scf.for {{.*}} iter_args(%{{.+}} = %c0_i32{{.*}}) -> (i32)
// CHECK:             tensor.extract %[[KEYS]]
// CHECK:             arith.cmpi sge, %{{.+}}, %[[SELF]] : i32
// CHECK:           scf.for {{.*}} to %c4 {{.*}} iter_args(%{{.+}} = %[[LOW]]) -> (i32)
// CHECK:             arith.cmpi sgt, %{{.+}}, %[[SELF]] : i32
// CHECK:         %[[CHOSEN:.+]]:2 = linalg.generic {{.*}} ins(%[[RANK]], %[[P]] : tensor<?x4xi32>, tensor<?x4xf32>) outs(%{{.+}}, %{{.+}} : tensor<?x2xi32>, tensor<?x2xf32>)
// CHECK:         %[[TI:.+]] = arith.index_cast %[[T]] : index to i64
// CHECK:         %[[TF:.+]] = arith.sitofp %[[TI]] : i64 to f64
// CHECK:         %[[SCALED:.+]] = arith.mulf %{{.+}}, %[[TF]] : f64
// CHECK:         %[[PER:.+]] = arith.divf %[[SCALED]], %{{.+}} : f64
// CHECK:         %[[CEIL:.+]] = math.ceil %[[PER]] : f64
// CHECK:         %[[C:.+]] = arith.index_cast %{{.+}} : i64 to index
// CHECK:         %[[IDS0:.+]] = linalg.fill ins(%c-1_i32{{.*}} : i32) outs(%{{.+}} : tensor<4x?xi32>)
// CHECK:         scf.for %[[J:.+]] = %{{.+}} to %c2 step
// CHECK:           scf.for %[[TOK:.+]] = %{{.+}} to %[[T]] step
// CHECK:             %[[E:.+]] = tensor.extract %[[CHOSEN]]#0[%[[TOK]], %[[J]]] : tensor<?x2xi32>
// CHECK:             %[[FITS:.+]] = arith.cmpi ult, %{{.+}}, %[[C]] : index
// CHECK:             scf.if %[[FITS]]
// CHECK:               tensor.insert
// CHECK:               tensor.insert
// CHECK:               tensor.insert
// CHECK-NOT:     moe.route
func.func @capacity_dynamic(%s: tensor<?x4xf32>) -> (tensor<4x?xi32>, tensor<4x?xf32>) {
  %ids, %gates = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.0> %s
      : tensor<?x4xf32> -> tensor<4x?xi32>, tensor<4x?xf32>
  return %ids, %gates : tensor<4x?xi32>, tensor<4x?xf32>
}

// -----

// A static token count gives a static capacity: no runtime formula.
// CHECK-LABEL: func.func @capacity_static
// CHECK-NOT:     math.ceil
// CHECK:         linalg.fill ins(%c-1_i32{{.*}} : i32) outs(%{{.+}} : tensor<4x5xi32>)
func.func @capacity_static(%s: tensor<10x4xf32>) -> tensor<4x5xi32> {
  %ids, %gates = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.0> %s
      : tensor<10x4xf32> -> tensor<4x5xi32>, tensor<4x5xf32>
  return %ids : tensor<4x5xi32>
}

// -----

// Priority order ranks the tokens by their first gate (a column rank over
// [T, 1]) and scatters the order before the assignment loop.
// CHECK-LABEL: func.func @capacity_priority
// CHECK:         %[[FIRST:.+]] = tensor.extract_slice %{{.+}}[0, 0] [%{{.+}}, 1] [1, 1] : tensor<?x1xf32> to tensor<?x1xf32>
// CHECK:         %[[TKEYS:.+]] = linalg.generic {{.*}} ins(%[[FIRST]] : tensor<?x1xf32>) outs(%{{.+}} : tensor<1x?xi32>)
// CHECK:         %[[TRANK:.+]] = linalg.generic {{.*}} outs(%{{.+}} : tensor<?x1xi32>)
// CHECK:           tensor.extract %[[TKEYS]]
// CHECK:           scf.for {{.*}} -> (i32)
// CHECK:         %[[ORDER:.+]] = scf.for {{.*}} -> (tensor<?xi32>)
// CHECK:           tensor.extract %[[TRANK]]
// CHECK:           tensor.insert
// CHECK:         scf.for
// CHECK:           scf.for
// CHECK:             tensor.extract %[[ORDER]]
func.func @capacity_priority(%s: tensor<?x4xf32>) -> tensor<4x?xi32> {
  %ids, %gates = moe.route #moe.token_choice<top_k = 1, capacity_factor = 1.0, order = priority> %s
      : tensor<?x4xf32> -> tensor<4x?xi32>, tensor<4x?xf32>
  return %ids : tensor<4x?xi32>
}

// -----

// Sigmoid scores, normalization (guarded against all-zero gates) and scaling.
// CHECK-LABEL: func.func @sigmoid_normalize_scale
// CHECK:         linalg.generic
// CHECK:           arith.negf
// CHECK:           arith.cmpf uno
// CHECK:           arith.fptosi {{.*}} : f32 to i32
// CHECK:           arith.bitcast {{.*}} : i32 to f32
// CHECK:           arith.divf
// CHECK:         %[[SUM:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]
// CHECK:         linalg.generic {{.*}} ins(%{{.+}}, %[[SUM]] :
// CHECK:           %[[POS:.+]] = arith.cmpf ogt
// CHECK:           %[[DIV:.+]] = arith.divf
// CHECK:           %[[SEL:.+]] = arith.select %[[POS]], %[[DIV]]
// CHECK:           arith.mulf %[[SEL]], %cst{{.*}} : f32
func.func @sigmoid_normalize_scale(%s: tensor<8x4xf32>) -> tensor<4x6xf32> {
  %ids, %gates = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.5, score = sigmoid, normalize = true, routed_scaling_factor = 2.5> %s
      : tensor<8x4xf32> -> tensor<4x6xi32>, tensor<4x6xf32>
  return %gates : tensor<4x6xf32>
}

// -----

// Dropless: per-expert counts, E+1 offsets by prefix sum, then a
// token-by-token cursor fill of the CSR rows.
// CHECK-LABEL: func.func @dropless
// CHECK:         %[[COUNTS:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction", "reduction"]{{.*}} outs(%{{.+}} : tensor<4xi32>)
// CHECK:         %[[OFFSETS:.+]] = scf.for {{.*}} -> (tensor<5xi32>)
// CHECK:           tensor.extract %[[COUNTS]]
// CHECK:         %[[N:.+]] = arith.muli %{{.+}}, %c2 : index
// CHECK:         %[[CURSOR:.+]] = tensor.extract_slice %[[OFFSETS]][0] [4] [1] : tensor<5xi32> to tensor<4xi32>
// CHECK:         %[[FILL:.+]]:3 = scf.for {{.*}} iter_args({{.*}}%[[CURSOR]]) -> (tensor<?xi32>, tensor<?xf16>, tensor<4xi32>)
// CHECK:           scf.for
// CHECK:             arith.truncf %{{.+}} : f32 to f16
// CHECK:         return %[[FILL]]#0, %[[FILL]]#1, %[[OFFSETS]]
func.func @dropless(%s: tensor<?x4xf16>) -> (tensor<?xi32>, tensor<?xf16>, tensor<5xi32>) {
  %ids, %gates, %offsets = moe.route #moe.token_choice<top_k = 2> %s
      : tensor<?x4xf16> -> tensor<?xi32>, tensor<?xf16>, tensor<5xi32>
  return %ids, %gates, %offsets : tensor<?xi32>, tensor<?xf16>, tensor<5xi32>
}

// -----

// Grouped routing: biased keys, each group's two best (two-output
// reduction), group ranks, and -inf outside the kept groups.
// CHECK-LABEL: func.func @grouped
// CHECK:         %[[KEYS:.+]] = linalg.generic {{.*}} ins(%{{.+}}, %{{.+}} : tensor<?x8xf32>, tensor<8xf32>)
// CHECK:           arith.addf
// CHECK:         %[[G3:.+]] = tensor.expand_shape %[[KEYS]] {{\[}}[0], [1, 2]] output_shape [%{{.+}}, 4, 2] : tensor<?x8xf32> into tensor<?x4x2xf32>
// CHECK:         %[[TOP2:.+]]:2 = linalg.generic {{.*}} ins(%[[G3]] : tensor<?x4x2xf32>) outs(%{{.+}}, %{{.+}} : tensor<?x4xf32>, tensor<?x4xf32>)
// CHECK:           arith.maximumf
// CHECK:           arith.minimumf
// CHECK:           arith.maximumf
// CHECK:         %[[GSCORE:.+]] = linalg.generic {{.*}} ins(%[[TOP2]]#0, %[[TOP2]]#1
// CHECK:         %[[GKEYS:.+]] = linalg.generic {{.*}} ins(%[[GSCORE]] : tensor<?x4xf32>) outs(%{{.+}} : tensor<?x4xi32>)
// CHECK:         %[[GRANK:.+]] = linalg.generic {{.*}} outs(%{{.+}} : tensor<?x4xi32>)
// CHECK:           tensor.extract %[[GKEYS]]
// CHECK:         %[[MASKED:.+]] = linalg.generic {{.*}} ins(%[[G3]], %[[GRANK]]
// CHECK:           arith.cmpi slt, %{{.+}}, %c2_i32 : i32
// CHECK:           arith.select %{{.+}}, %{{.+}}, %cst{{.*}} : f32
// CHECK:         tensor.collapse_shape %[[MASKED]] {{\[}}[0], [1, 2]] : tensor<?x4x2xf32> into tensor<?x8xf32>
func.func @grouped(%s: tensor<?x8xf32>, %b: tensor<8xf32>) -> tensor<?xi32> {
  %ids, %gates, %offsets = moe.route #moe.token_choice<top_k = 2, score = sigmoid, n_group = 4, topk_group = 2> %s bias(%b : tensor<8xf32>)
      : tensor<?x8xf32> -> tensor<?xi32>, tensor<?xf32>, tensor<9xi32>
  return %ids : tensor<?xi32>
}

// -----

// Expert choice: ranks within columns (over tokens), then each token whose
// rank r in column e is below C goes to slot r of expert e (a scatter over
// tokens and experts; the parallel lowering searches instead); bf16 gates
// are narrowed last.
// CHECK-LABEL: func.func @expert_choice
// The keys are transposed ([E, T]) so that each column's count reads
// contiguous keys.
// CHECK:         %[[KEYS:.+]] = linalg.generic {{.*}} ins(%{{.+}} : tensor<6x4xf32>) outs(%{{.+}} : tensor<4x6xi32>)
// CHECK:         %[[RANK:.+]] = linalg.generic {indexing_maps = [#{{.+}}], iterator_types = ["parallel", "parallel"]} outs(%{{.+}} : tensor<6x4xi32>)
// CHECK:           scf.for {{.*}} -> (i32)
// CHECK:             tensor.extract %[[KEYS]][%{{.+}}, %{{.+}}] : tensor<4x6xi32>
// CHECK:           scf.for {{.*}} to %c6 {{.*}} -> (i32)
// CHECK:         %[[TAKEN:.+]]:2 = scf.for %[[T:.+]] = %c0{{.*}} to %c6{{.*}} step %c1{{.*}} iter_args(%{{.+}} = %{{.+}}, %{{.+}} = %{{.+}}) -> (tensor<4x3xi32>, tensor<4x3xf32>)
// CHECK:           scf.for %[[E:.+]] = %c0{{.*}} to %c4{{.*}} step
// CHECK:             %[[R:.+]] = tensor.extract %[[RANK]][%[[T]], %[[E]]] : tensor<6x4xi32>
// CHECK:             %[[RI:.+]] = arith.index_cast %[[R]] : i32 to index
// CHECK:             %[[IN:.+]] = arith.cmpi ult, %[[RI]], %c3{{.*}} : index
// CHECK:             scf.if %[[IN]]
// CHECK:               tensor.insert %{{.+}} into %{{.+}}[%[[E]], %[[RI]]] : tensor<4x3xi32>
// CHECK:               tensor.insert %{{.+}} into %{{.+}}[%[[E]], %[[RI]]] : tensor<4x3xf32>
// CHECK:         linalg.generic {{.*}} ins(%[[TAKEN]]#1 : tensor<4x3xf32>) outs(%{{.+}} : tensor<4x3xbf16>)
// CHECK:           arith.truncf
func.func @expert_choice(%s: tensor<6x4xbf16>) -> (tensor<4x3xi32>, tensor<4x3xbf16>) {
  %ids, %gates = moe.route #moe.expert_choice<capacity_factor = 2.0> %s
      : tensor<6x4xbf16> -> tensor<4x3xi32>, tensor<4x3xbf16>
  return %ids, %gates : tensor<4x3xi32>, tensor<4x3xbf16>
}

// -----

// Soft MoE: a softmax over tokens (reduction on dim 0) and one over slots.
// CHECK-LABEL: func.func @soft
// CHECK:         linalg.generic {{.*}}iterator_types = ["reduction", "parallel"]
// CHECK:         linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]
// CHECK-NOT:     linalg.matmul
func.func @soft(%s: tensor<?x8xf32>) -> (tensor<?x8xf32>, tensor<?x8xf32>) {
  %d, %c = moe.route #moe.soft<slots_per_expert = 2> %s
      : tensor<?x8xf32> -> tensor<?x8xf32>, tensor<?x8xf32>
  return %d, %c : tensor<?x8xf32>, tensor<?x8xf32>
}

// -----

// Expert choice with normalize: per-token gate sums over the slots (experts
// ascending), then every valid slot's gate divided by its token's sum.
// CHECK-LABEL: func.func @expert_choice_normalize
// CHECK:         %[[TAKEN:.+]]:2 = scf.for
// CHECK:         %[[SUMS:.+]] = scf.for {{.*}} -> (tensor<6xf32>)
// CHECK:           scf.for
// CHECK:             scf.if
// CHECK:               arith.addf
// CHECK:         linalg.generic {{.*}} ins(%[[TAKEN]]#0, %[[TAKEN]]#1 : tensor<4x3xi32>, tensor<4x3xf32>)
// CHECK:           tensor.extract %[[SUMS]]
// CHECK:           arith.divf
func.func @expert_choice_normalize(%s: tensor<6x4xf32>) -> tensor<4x3xf32> {
  %ids, %gates = moe.route #moe.expert_choice<capacity_factor = 2.0, normalize = true> %s
      : tensor<6x4xf32> -> tensor<4x3xi32>, tensor<4x3xf32>
  return %gates : tensor<4x3xf32>
}
