// REQUIRES: nvptx-registered-target
// Layers with a single token (static T = 1) or a single expert (E = 1),
// whose loops over tokens, experts, tiles and warp lanes have one iteration
// that the canonicalizer folds away. Both GPU pipelines map them (they share
// one mapping): every kernel is a launch, and the host code reads no device
// memory. Before, moe-gpu-pipeline rejected the capacity-by-priority and
// single-expert layers and the emulation all five ("the host would need a
// value that only the device can compute").

// RUN: moe-opt %s -split-input-file --moe-gpu-pipeline="chip=sm_80 format=isa" | FileCheck %s --check-prefixes=GPU,SM80
// RUN: moe-opt %s -split-input-file --moe-gpu-pipeline="chip=sm_90 features=+ptx80 format=isa" | FileCheck %s --check-prefixes=GPU,SM90
// RUN: moe-opt %s -split-input-file --moe-gpu-emulation-pipeline | FileCheck %s --check-prefix=EMU

// With ptxas, every kernel assembles for its chip without spills.
// RUN: %if ptxas %{ rm -rf %t && mkdir -p %t %}
// RUN: %if ptxas %{ moe-opt %s -split-input-file --moe-gpu-pipeline="chip=sm_80 format=isa" --moe-dump-gpu-objects=dir=%t/sm_80 -o /dev/null %}
// RUN: %if ptxas %{ %python %S/../GPU/ptxas-report.py %ptxas sm_80 %t/sm_80 | FileCheck %s --check-prefix=PTXAS %}
// RUN: %if ptxas %{ moe-opt %s -split-input-file --moe-gpu-pipeline="chip=sm_90 features=+ptx80 format=isa" --moe-dump-gpu-objects=dir=%t/sm_90 -o /dev/null %}
// RUN: %if ptxas %{ %python %S/../GPU/ptxas-report.py %ptxas sm_90 %t/sm_90 | FileCheck %s --check-prefix=PTXAS %}
// PTXAS: files: {{[1-9][0-9]*}}, failed: 0, kernels: {{[1-9][0-9]*}}
// PTXAS: spill bytes: 0, stack bytes: 0

// T = 1, dropless top-2 of 4 experts (the emulation's one-lane reductions
// fold too).

// GPU-LABEL: llvm.func @dropless_one_token(
// GPU-NOT:     llvm.load
// GPU:         gpu.launch_func <%{{.+}}> @dropless_one_token_kernel::@dropless_one_token_kernel
// GPU-NOT:     llvm.load
// GPU:         llvm.call @mgpuStreamSynchronize
// GPU-NOT:     llvm.load
// GPU:         llvm.return
// GPU:       gpu.binary @dropless_one_token_kernel
// SM80-SAME:   chip = "sm_80"
// SM90-SAME:   chip = "sm_90", features = "+ptx80"
// GPU-SAME:    .visible .entry dropless_one_token_kernel
// EMU-NOT:   gpu.
// EMU-LABEL: llvm.func @dropless_one_token(
// EMU-NOT:   gpu.
// EMU-LABEL: llvm.func @_mlir_ciface_dropless_one_token(
// EMU-NOT:   gpu.
func.func @dropless_one_token(%x: tensor<1x8xf32>, %router: tensor<8x4xf32>, %w_gate: tensor<4x8x16xf32>, %w_up: tensor<4x8x16xf32>, %w_down: tensor<4x16x8xf32>) -> tensor<1x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %le = tensor.empty() : tensor<1x4xf32>
  %l0 = linalg.fill ins(%zero : f32) outs(%le : tensor<1x4xf32>) -> tensor<1x4xf32>
  %logits = linalg.matmul ins(%x, %router : tensor<1x8xf32>, tensor<8x4xf32>) outs(%l0 : tensor<1x4xf32>) -> tensor<1x4xf32>
  %ids, %gates, %offsets = moe.route #moe.token_choice<top_k = 2, normalize = true> %logits : tensor<1x4xf32> -> tensor<2xi32>, tensor<2xf32>, tensor<5xi32>
  %xe = moe.dispatch %x indices(%ids : tensor<2xi32>) : tensor<1x8xf32> -> tensor<2x8xf32>
  %ye = moe.expert %xe offsets(%offsets : tensor<5xi32>) weights(%w_gate, %w_up, %w_down : tensor<4x8x16xf32>, tensor<4x8x16xf32>, tensor<4x16x8xf32>) : tensor<2x8xf32> -> tensor<2x8xf32> {
  ^bb0(%rows: tensor<?x8xf32>, %eg: tensor<8x16xf32>, %eu: tensor<8x16xf32>, %ed: tensor<16x8xf32>):
    %i0 = arith.constant 0 : index
    %f0 = arith.constant 0.0 : f32
    %n = tensor.dim %rows, %i0 : tensor<?x8xf32>
    %he = tensor.empty(%n) : tensor<?x16xf32>
    %h0 = linalg.fill ins(%f0 : f32) outs(%he : tensor<?x16xf32>) -> tensor<?x16xf32>
    %hd = tensor.empty(%n) : tensor<?x16xf32>
    %g = linalg.matmul ins(%rows, %eg : tensor<?x8xf32>, tensor<8x16xf32>) outs(%h0 : tensor<?x16xf32>) -> tensor<?x16xf32>
    %u = linalg.matmul ins(%rows, %eu : tensor<?x8xf32>, tensor<8x16xf32>) outs(%h0 : tensor<?x16xf32>) -> tensor<?x16xf32>
    %h = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%g, %u : tensor<?x16xf32>, tensor<?x16xf32>) outs(%hd : tensor<?x16xf32>) {
      ^bb0(%a: f32, %b: f32, %unused: f32):
        %one = arith.constant 1.0 : f32
        %neg = arith.negf %a : f32
        %exp = math.exp %neg : f32
        %den = arith.addf %one, %exp : f32
        %act = arith.divf %a, %den : f32
        %prod = arith.mulf %act, %b : f32
        linalg.yield %prod : f32
    } -> tensor<?x16xf32>
    %oe = tensor.empty(%n) : tensor<?x8xf32>
    %o0 = linalg.fill ins(%f0 : f32) outs(%oe : tensor<?x8xf32>) -> tensor<?x8xf32>
    %o = linalg.matmul ins(%h, %ed : tensor<?x16xf32>, tensor<16x8xf32>) outs(%o0 : tensor<?x8xf32>) -> tensor<?x8xf32>
    moe.yield %o : tensor<?x8xf32>
  }
  %init = tensor.empty() : tensor<1x8xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%init : tensor<1x8xf32>) -> tensor<1x8xf32>
  %y = moe.combine %ye indices(%ids : tensor<2xi32>) weights(%gates : tensor<2xf32>) into %acc : tensor<2x8xf32> -> tensor<1x8xf32>
  return %y : tensor<1x8xf32>
}

// -----

// T = 1, capacity by priority: the single token's rank and slot are
// straight-line loads and stores.

// GPU-LABEL: llvm.func @priority_one_token(
// GPU-NOT:     llvm.load
// GPU:         gpu.launch_func <%{{.+}}> @priority_one_token_kernel::@priority_one_token_kernel
// GPU-NOT:     llvm.load
// GPU:         llvm.call @mgpuStreamSynchronize
// GPU-NOT:     llvm.load
// GPU:         llvm.return
// GPU:       gpu.binary @priority_one_token_kernel
// SM80-SAME:   chip = "sm_80"
// SM90-SAME:   chip = "sm_90", features = "+ptx80"
// GPU-SAME:    .visible .entry priority_one_token_kernel
// EMU-NOT:   gpu.
// EMU-LABEL: llvm.func @priority_one_token(
// EMU-NOT:   gpu.
// EMU-LABEL: llvm.func @_mlir_ciface_priority_one_token(
// EMU-NOT:   gpu.
func.func @priority_one_token(%x: tensor<1x8xf32>, %router: tensor<8x4xf32>, %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) -> tensor<1x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %le = tensor.empty() : tensor<1x4xf32>
  %l0 = linalg.fill ins(%zero : f32) outs(%le : tensor<1x4xf32>) -> tensor<1x4xf32>
  %logits = linalg.matmul ins(%x, %router : tensor<1x8xf32>, tensor<8x4xf32>) outs(%l0 : tensor<1x4xf32>) -> tensor<1x4xf32>
  %ids, %gates = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.0, order = priority> %logits : tensor<1x4xf32> -> tensor<4x1xi32>, tensor<4x1xf32>
  %xe = moe.dispatch %x indices(%ids : tensor<4x1xi32>) : tensor<1x8xf32> -> tensor<4x1x8xf32>
  %ye = moe.expert %xe weights(%w1, %w2 : tensor<4x8x16xf32>, tensor<4x16x8xf32>) : tensor<4x1x8xf32> -> tensor<4x1x8xf32> {
  ^bb0(%rows: tensor<1x8xf32>, %e1: tensor<8x16xf32>, %e2: tensor<16x8xf32>):
    %i0 = arith.constant 0 : index
    %f0 = arith.constant 0.0 : f32
    %he = tensor.empty() : tensor<1x16xf32>
    %h0 = linalg.fill ins(%f0 : f32) outs(%he : tensor<1x16xf32>) -> tensor<1x16xf32>
    %hd = tensor.empty() : tensor<1x16xf32>
    %pre = linalg.matmul ins(%rows, %e1 : tensor<1x8xf32>, tensor<8x16xf32>) outs(%h0 : tensor<1x16xf32>) -> tensor<1x16xf32>
    %h = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%pre : tensor<1x16xf32>) outs(%hd : tensor<1x16xf32>) {
      ^bb0(%a: f32, %unused: f32):
        %act = arith.maximumf %a, %f0 : f32
        linalg.yield %act : f32
    } -> tensor<1x16xf32>
    %oe = tensor.empty() : tensor<1x8xf32>
    %o0 = linalg.fill ins(%f0 : f32) outs(%oe : tensor<1x8xf32>) -> tensor<1x8xf32>
    %o = linalg.matmul ins(%h, %e2 : tensor<1x16xf32>, tensor<16x8xf32>) outs(%o0 : tensor<1x8xf32>) -> tensor<1x8xf32>
    moe.yield %o : tensor<1x8xf32>
  }
  %init = tensor.empty() : tensor<1x8xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%init : tensor<1x8xf32>) -> tensor<1x8xf32>
  %y = moe.combine %ye indices(%ids : tensor<4x1xi32>) weights(%gates : tensor<4x1xf32>) into %acc : tensor<4x1x8xf32> -> tensor<1x8xf32>
  return %y : tensor<1x8xf32>
}

// -----

// T = 1, Soft MoE.

// GPU-LABEL: llvm.func @soft_one_token(
// GPU-NOT:     llvm.load
// GPU:         gpu.launch_func <%{{.+}}> @soft_one_token_kernel::@soft_one_token_kernel
// GPU-NOT:     llvm.load
// GPU:         llvm.call @mgpuStreamSynchronize
// GPU-NOT:     llvm.load
// GPU:         llvm.return
// GPU:       gpu.binary @soft_one_token_kernel
// SM80-SAME:   chip = "sm_80"
// SM90-SAME:   chip = "sm_90", features = "+ptx80"
// GPU-SAME:    .visible .entry soft_one_token_kernel
// EMU-NOT:   gpu.
// EMU-LABEL: llvm.func @soft_one_token(
// EMU-NOT:   gpu.
// EMU-LABEL: llvm.func @_mlir_ciface_soft_one_token(
// EMU-NOT:   gpu.
func.func @soft_one_token(%x: tensor<1x8xf32>, %router: tensor<8x4xf32>, %w1: tensor<2x8x16xf32>, %w2: tensor<2x16x8xf32>) -> tensor<1x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %le = tensor.empty() : tensor<1x4xf32>
  %l0 = linalg.fill ins(%zero : f32) outs(%le : tensor<1x4xf32>) -> tensor<1x4xf32>
  %logits = linalg.matmul ins(%x, %router : tensor<1x8xf32>, tensor<8x4xf32>) outs(%l0 : tensor<1x4xf32>) -> tensor<1x4xf32>
  %disp, %comb = moe.route #moe.soft<slots_per_expert = 2> %logits : tensor<1x4xf32> -> tensor<1x4xf32>, tensor<1x4xf32>
  %xe = moe.dispatch %x weights(%disp : tensor<1x4xf32>) : tensor<1x8xf32> -> tensor<2x2x8xf32>
  %ye = moe.expert %xe weights(%w1, %w2 : tensor<2x8x16xf32>, tensor<2x16x8xf32>) : tensor<2x2x8xf32> -> tensor<2x2x8xf32> {
  ^bb0(%rows: tensor<2x8xf32>, %e1: tensor<8x16xf32>, %e2: tensor<16x8xf32>):
    %i0 = arith.constant 0 : index
    %f0 = arith.constant 0.0 : f32
    %he = tensor.empty() : tensor<2x16xf32>
    %h0 = linalg.fill ins(%f0 : f32) outs(%he : tensor<2x16xf32>) -> tensor<2x16xf32>
    %hd = tensor.empty() : tensor<2x16xf32>
    %pre = linalg.matmul ins(%rows, %e1 : tensor<2x8xf32>, tensor<8x16xf32>) outs(%h0 : tensor<2x16xf32>) -> tensor<2x16xf32>
    %h = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%pre : tensor<2x16xf32>) outs(%hd : tensor<2x16xf32>) {
      ^bb0(%a: f32, %unused: f32):
        %sqrt2 = arith.constant 1.41421354 : f32
        %half = arith.constant 0.5 : f32
        %one = arith.constant 1.0 : f32
        %scaled = arith.divf %a, %sqrt2 : f32
        %erf = math.erf %scaled : f32
        %onep = arith.addf %one, %erf : f32
        %hx = arith.mulf %half, %a : f32
        %act = arith.mulf %hx, %onep : f32
        linalg.yield %act : f32
    } -> tensor<2x16xf32>
    %oe = tensor.empty() : tensor<2x8xf32>
    %o0 = linalg.fill ins(%f0 : f32) outs(%oe : tensor<2x8xf32>) -> tensor<2x8xf32>
    %o = linalg.matmul ins(%h, %e2 : tensor<2x16xf32>, tensor<16x8xf32>) outs(%o0 : tensor<2x8xf32>) -> tensor<2x8xf32>
    moe.yield %o : tensor<2x8xf32>
  }
  %init = tensor.empty() : tensor<1x8xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%init : tensor<1x8xf32>) -> tensor<1x8xf32>
  %y = moe.combine %ye weights(%comb : tensor<1x4xf32>) into %acc : tensor<2x2x8xf32> -> tensor<1x8xf32>
  return %y : tensor<1x8xf32>
}

// -----

// E = 1, static T = 8: the expert-tile loop over (1 expert, 1 tile) folds
// away, and the tile's gather, GEMMs and copy out are one block's work.

// GPU-LABEL: llvm.func @dropless_one_expert(
// GPU-NOT:     llvm.load
// GPU:         gpu.launch_func <%{{.+}}> @dropless_one_expert_kernel::@dropless_one_expert_kernel
// GPU-NOT:     llvm.load
// GPU:         llvm.call @mgpuStreamSynchronize
// GPU-NOT:     llvm.load
// GPU:         llvm.return
// GPU:       gpu.binary @dropless_one_expert_kernel
// SM80-SAME:   chip = "sm_80"
// SM90-SAME:   chip = "sm_90", features = "+ptx80"
// GPU-SAME:    .visible .entry dropless_one_expert_kernel
// EMU-NOT:   gpu.
// EMU-LABEL: llvm.func @dropless_one_expert(
// EMU-NOT:   gpu.
// EMU-LABEL: llvm.func @_mlir_ciface_dropless_one_expert(
// EMU-NOT:   gpu.
func.func @dropless_one_expert(%x: tensor<8x8xf32>, %router: tensor<8x1xf32>, %w1: tensor<1x8x16xf32>, %w2: tensor<1x16x8xf32>) -> tensor<8x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %le = tensor.empty() : tensor<8x1xf32>
  %l0 = linalg.fill ins(%zero : f32) outs(%le : tensor<8x1xf32>) -> tensor<8x1xf32>
  %logits = linalg.matmul ins(%x, %router : tensor<8x8xf32>, tensor<8x1xf32>) outs(%l0 : tensor<8x1xf32>) -> tensor<8x1xf32>
  %ids, %gates, %offsets = moe.route #moe.token_choice<top_k = 1> %logits : tensor<8x1xf32> -> tensor<8xi32>, tensor<8xf32>, tensor<2xi32>
  %xe = moe.dispatch %x indices(%ids : tensor<8xi32>) : tensor<8x8xf32> -> tensor<8x8xf32>
  %ye = moe.expert %xe offsets(%offsets : tensor<2xi32>) weights(%w1, %w2 : tensor<1x8x16xf32>, tensor<1x16x8xf32>) : tensor<8x8xf32> -> tensor<8x8xf32> {
  ^bb0(%rows: tensor<?x8xf32>, %e1: tensor<8x16xf32>, %e2: tensor<16x8xf32>):
    %i0 = arith.constant 0 : index
    %f0 = arith.constant 0.0 : f32
    %n = tensor.dim %rows, %i0 : tensor<?x8xf32>
    %he = tensor.empty(%n) : tensor<?x16xf32>
    %h0 = linalg.fill ins(%f0 : f32) outs(%he : tensor<?x16xf32>) -> tensor<?x16xf32>
    %hd = tensor.empty(%n) : tensor<?x16xf32>
    %pre = linalg.matmul ins(%rows, %e1 : tensor<?x8xf32>, tensor<8x16xf32>) outs(%h0 : tensor<?x16xf32>) -> tensor<?x16xf32>
    %h = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%pre : tensor<?x16xf32>) outs(%hd : tensor<?x16xf32>) {
      ^bb0(%a: f32, %unused: f32):
        %act = arith.maximumf %a, %f0 : f32
        linalg.yield %act : f32
    } -> tensor<?x16xf32>
    %oe = tensor.empty(%n) : tensor<?x8xf32>
    %o0 = linalg.fill ins(%f0 : f32) outs(%oe : tensor<?x8xf32>) -> tensor<?x8xf32>
    %o = linalg.matmul ins(%h, %e2 : tensor<?x16xf32>, tensor<16x8xf32>) outs(%o0 : tensor<?x8xf32>) -> tensor<?x8xf32>
    moe.yield %o : tensor<?x8xf32>
  }
  %init = tensor.empty() : tensor<8x8xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%init : tensor<8x8xf32>) -> tensor<8x8xf32>
  %y = moe.combine %ye indices(%ids : tensor<8xi32>) weights(%gates : tensor<8xf32>) into %acc : tensor<8x8xf32> -> tensor<8x8xf32>
  return %y : tensor<8x8xf32>
}

// -----

// E = 1, T = 1, expert choice (C = 1).

// GPU-LABEL: llvm.func @expert_choice_one_expert(
// GPU-NOT:     llvm.load
// GPU:         gpu.launch_func <%{{.+}}> @expert_choice_one_expert_kernel::@expert_choice_one_expert_kernel
// GPU-NOT:     llvm.load
// GPU:         llvm.call @mgpuStreamSynchronize
// GPU-NOT:     llvm.load
// GPU:         llvm.return
// GPU:       gpu.binary @expert_choice_one_expert_kernel
// SM80-SAME:   chip = "sm_80"
// SM90-SAME:   chip = "sm_90", features = "+ptx80"
// GPU-SAME:    .visible .entry expert_choice_one_expert_kernel
// EMU-NOT:   gpu.
// EMU-LABEL: llvm.func @expert_choice_one_expert(
// EMU-NOT:   gpu.
// EMU-LABEL: llvm.func @_mlir_ciface_expert_choice_one_expert(
// EMU-NOT:   gpu.
func.func @expert_choice_one_expert(%x: tensor<1x8xf32>, %router: tensor<8x1xf32>, %w1: tensor<1x8x16xf32>, %w2: tensor<1x16x8xf32>) -> tensor<1x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %le = tensor.empty() : tensor<1x1xf32>
  %l0 = linalg.fill ins(%zero : f32) outs(%le : tensor<1x1xf32>) -> tensor<1x1xf32>
  %logits = linalg.matmul ins(%x, %router : tensor<1x8xf32>, tensor<8x1xf32>) outs(%l0 : tensor<1x1xf32>) -> tensor<1x1xf32>
  %ids, %gates = moe.route #moe.expert_choice<capacity_factor = 1.0> %logits : tensor<1x1xf32> -> tensor<1x1xi32>, tensor<1x1xf32>
  %xe = moe.dispatch %x indices(%ids : tensor<1x1xi32>) : tensor<1x8xf32> -> tensor<1x1x8xf32>
  %ye = moe.expert %xe weights(%w1, %w2 : tensor<1x8x16xf32>, tensor<1x16x8xf32>) : tensor<1x1x8xf32> -> tensor<1x1x8xf32> {
  ^bb0(%rows: tensor<1x8xf32>, %e1: tensor<8x16xf32>, %e2: tensor<16x8xf32>):
    %i0 = arith.constant 0 : index
    %f0 = arith.constant 0.0 : f32
    %he = tensor.empty() : tensor<1x16xf32>
    %h0 = linalg.fill ins(%f0 : f32) outs(%he : tensor<1x16xf32>) -> tensor<1x16xf32>
    %hd = tensor.empty() : tensor<1x16xf32>
    %pre = linalg.matmul ins(%rows, %e1 : tensor<1x8xf32>, tensor<8x16xf32>) outs(%h0 : tensor<1x16xf32>) -> tensor<1x16xf32>
    %h = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%pre : tensor<1x16xf32>) outs(%hd : tensor<1x16xf32>) {
      ^bb0(%a: f32, %unused: f32):
        %one = arith.constant 1.0 : f32
        %neg = arith.negf %a : f32
        %exp = math.exp %neg : f32
        %den = arith.addf %one, %exp : f32
        %act = arith.divf %a, %den : f32
        linalg.yield %act : f32
    } -> tensor<1x16xf32>
    %oe = tensor.empty() : tensor<1x8xf32>
    %o0 = linalg.fill ins(%f0 : f32) outs(%oe : tensor<1x8xf32>) -> tensor<1x8xf32>
    %o = linalg.matmul ins(%h, %e2 : tensor<1x16xf32>, tensor<16x8xf32>) outs(%o0 : tensor<1x8xf32>) -> tensor<1x8xf32>
    moe.yield %o : tensor<1x8xf32>
  }
  %init = tensor.empty() : tensor<1x8xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%init : tensor<1x8xf32>) -> tensor<1x8xf32>
  %y = moe.combine %ye indices(%ids : tensor<1x1xi32>) weights(%gates : tensor<1x1xf32>) into %acc : tensor<1x1x8xf32> -> tensor<1x8xf32>
  return %y : tensor<1x8xf32>
}
