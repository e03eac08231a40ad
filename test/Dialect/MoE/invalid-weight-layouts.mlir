// RUN: moe-opt %s -split-input-file -verify-diagnostics

// A packed [64, 96] weight in panels of 64 is [E, 2, 64, 64].
func.func @wrong_packed_shape(%x: tensor<4x8x64xf32>, %w: tensor<4x1x64x96xf32>) -> tensor<4x8x96xf32> {
  // expected-error @+1 {{packed weight #0 of the [64, 96] body argument in panels of 64 must be 'tensor<4x2x64x64xf32>' ([E, ceil(N / panel), K, panel]), got 'tensor<4x1x64x96xf32>'}}
  %y = moe.expert %x weights(%w : tensor<4x1x64x96xf32>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

func.func @wrong_element_type(%x: tensor<4x8x64xf32>, %w: tensor<4x2x64x64xbf16>) -> tensor<4x8x96xf32> {
  // expected-error @+1 {{packed weight #0 of the [64, 96] body argument in panels of 64 must be 'tensor<4x2x64x64xf32>'}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x64xbf16>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

func.func @entry_count(%x: tensor<4x8x64xf32>, %w: tensor<4x64x96xf32>) -> tensor<4x8x96xf32> {
  // expected-error @+1 {{'weight_layouts' must have one entry per weight (1), got 2}}
  %y = moe.expert %x weights(%w : tensor<4x64x96xf32>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [unit, unit]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

func.func @entry_kind(%x: tensor<4x8x64xf32>, %w: tensor<4x64x96xf32>) -> tensor<4x8x96xf32> {
  // expected-error @+1 {{'weight_layouts' entry #0 must be 'unit' (unpacked) or #moe.packed<...>, got 64 : i64}}
  %y = moe.expert %x weights(%w : tensor<4x64x96xf32>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [64]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

func.func @packed_vector(%x: tensor<4x8x64xf32>, %w: tensor<4x2x1x64xf32>) -> tensor<4x8x64xf32> {
  // expected-error @+1 {{packed weight #0 needs a body argument of static shape [K, N], got 'tensor<96xf32>'}}
  %y = moe.expert %x weights(%w : tensor<4x2x1x64xf32>) : tensor<4x8x64xf32> -> tensor<4x8x64xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<96xf32>):
    moe.yield %r : tensor<8x64xf32>
  }
  return %y : tensor<4x8x64xf32>
}

// -----

func.func @bad_panel(%x: tensor<4x8x64xf32>, %w: tensor<4x64x96xf32>) -> tensor<4x8x96xf32> {
  %y = moe.expert %x weights(%w : tensor<4x64x96xf32>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      // expected-error @+1 {{#moe.packed: panel must be in [1, 4096] columns, got 0}}
      attributes {weight_layouts = [#moe.packed<panel = 0>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

func.func @storage_type(%x: tensor<4x8x64xf32>, %w: tensor<4x2x64x64xf16>) -> tensor<4x8x96xf32> {
  // expected-error @+2 {{#moe.packed: storage must be bf16, i8 or i4 (or absent: the body argument's element type), got 'f16'}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x64xf16>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64, storage = f16>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

// A weight stored as bf16 is a bf16 operand.
func.func @storage_operand(%x: tensor<4x8x64xf32>, %w: tensor<4x2x64x64xf32>) -> tensor<4x8x96xf32> {
  // expected-error @+1 {{packed weight #0 of the [64, 96] body argument in panels of 64 must be 'tensor<4x2x64x64xbf16>' ([E, ceil(N / panel), K, panel]), got 'tensor<4x2x64x64xf32>'}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x64xf32>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64, storage = bf16>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

// bf16 storage widens to the body's f32 values: a body argument of another
// type has nothing to widen to.
func.func @storage_body(%x: tensor<4x8x64xbf16>, %w: tensor<4x2x64x64xbf16>) -> tensor<4x8x96xbf16> {
  // expected-error @+1 {{packed weight #0 stored as 'bf16' needs an f32 body argument (the values it is read as), got 'tensor<64x96xbf16>'}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x64xbf16>) : tensor<4x8x64xbf16> -> tensor<4x8x96xbf16>
      attributes {weight_layouts = [#moe.packed<panel = 64, storage = bf16>]} {
  ^bb0(%r: tensor<8x64xbf16>, %a: tensor<64x96xbf16>):
    %e = tensor.empty() : tensor<8x96xbf16>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xbf16>, tensor<64x96xbf16>) outs(%e : tensor<8x96xbf16>) -> tensor<8x96xbf16>
    moe.yield %m : tensor<8x96xbf16>
  }
  return %y : tensor<4x8x96xbf16>
}

// -----

// An i8 weight needs its column scales: one scales operand per quantized
// weight.
func.func @i8_without_scales(%x: tensor<4x8x64xf32>, %w: tensor<4x2x64x64xi8>) -> tensor<4x8x96xf32> {
  // expected-error @+1 {{needs one scales operand per quantized weight (1), got 0}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x64xi8>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64, storage = i8>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

// The scales are [E, ceil(N / panel), panel] of f32: one per output column
// (and zeros past N).
func.func @i8_scales_shape(%x: tensor<4x8x64xf32>, %w: tensor<4x2x64x64xi8>, %s: tensor<4x96xf32>) -> tensor<4x8x96xf32> {
  // expected-error @+1 {{the scales of packed weight #0 (one per output column) must be 'tensor<4x2x64xf32>' ([E, ceil(N / panel), panel]), got 'tensor<4x96xf32>'}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x64xi8>) scales(%s : tensor<4x96xf32>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64, storage = i8>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

// Scales belong to quantized weights only.
func.func @scales_without_i8(%x: tensor<4x8x64xf32>, %w: tensor<4x64x96xf32>, %s: tensor<4x2x64xf32>) -> tensor<4x8x96xf32> {
  // expected-error @+1 {{has 1 scales operand(s) but no quantized weight: scales belong to weights whose 'weight_layouts' entry stores them as i8}}
  %y = moe.expert %x weights(%w : tensor<4x64x96xf32>) scales(%s : tensor<4x2x64xf32>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32> {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

// A packed f32 weight has no scales either.
func.func @scales_for_f32_panels(%x: tensor<4x8x64xf32>, %w: tensor<4x2x64x64xf32>, %s: tensor<4x2x64xf32>) -> tensor<4x8x96xf32> {
  // expected-error @+1 {{needs one scales operand per quantized weight (0), got 1}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x64xf32>) scales(%s : tensor<4x2x64xf32>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

// 4-bit storage needs a group of rows per scale.
func.func @i4_without_group(%x: tensor<4x8x64xf32>, %w: tensor<4x2x64x32xi8>) -> tensor<4x8x96xf32> {
  // expected-error @+2 {{#moe.packed: storage = i4 needs a group >= 1 (rows along K per scale), got 0}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x32xi8>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64, storage = i4>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

// Two 4-bit columns share a byte: the panel is even.
func.func @i4_odd_panel(%x: tensor<4x8x64xf32>, %w: tensor<4x2x64x32xi8>) -> tensor<4x8x96xf32> {
  // expected-error @+2 {{#moe.packed: storage = i4 stores two columns per byte and needs an even panel, got 63}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x32xi8>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 63, storage = i4, group = 32>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

func.func @group_without_i4(%x: tensor<4x8x64xf32>, %w: tensor<4x2x64x64xi8>) -> tensor<4x8x96xf32> {
  // expected-error @+2 {{#moe.packed: group (32) is only for storage = i4}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x64xi8>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64, storage = i8, group = 32>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

// The groups cut K into whole groups.
func.func @i4_group_divides_k(%x: tensor<4x8x64xf32>, %w: tensor<4x2x64x32xi8>, %s: tensor<4x2x1x64xf32>) -> tensor<4x8x96xf32> {
  // expected-error @+1 {{packed weight #0 in groups of 48 rows needs K divisible by the group, got K = 64}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x32xi8>) scales(%s : tensor<4x2x1x64xf32>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64, storage = i4, group = 48>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

// 4-bit panels are [E, ceil(N / panel), K, panel / 2] bytes with scales
// [E, ceil(N / panel), K / group, panel].
func.func @i4_scales_shape(%x: tensor<4x8x64xf32>, %w: tensor<4x2x64x32xi8>, %s: tensor<4x2x64xf32>) -> tensor<4x8x96xf32> {
  // expected-error @+1 {{the scales of packed weight #0 (one per group and output column) must be 'tensor<4x2x2x64xf32>' ([E, ceil(N / panel), K / group, panel]), got 'tensor<4x2x64xf32>'}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x32xi8>) scales(%s : tensor<4x2x64xf32>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64, storage = i4, group = 32>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

// Int8 rows are for 4-bit weights only.
func.func @int8_rows_without_i4(%x: tensor<4x8x64xf32>, %w: tensor<4x2x64x64xi8>) -> tensor<4x8x96xf32> {
  // expected-error @+2 {{#moe.packed: activations = i8 needs storage = i4 and a group that is a multiple of 4 (rows are stored four by four), got storage = 'i8', group = 0}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x64xi8>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64, storage = i8, activations = i8>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

// The rows of a group are stored in runs of four.
func.func @int8_rows_group_of_six(%x: tensor<4x8x64xf32>, %w: tensor<4x2x64x32xi8>) -> tensor<4x8x96xf32> {
  // expected-error @+2 {{#moe.packed: activations = i8 needs storage = i4 and a group that is a multiple of 4 (rows are stored four by four), got storage = 'i4', group = 6}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x32xi8>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64, storage = i4, group = 6, activations = i8>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

func.func @int8_rows_of_f16(%x: tensor<4x8x64xf32>, %w: tensor<4x2x64x32xi8>) -> tensor<4x8x96xf32> {
  // expected-error @+2 {{#moe.packed: activations must be i8 (int8 rows for the integer dot product), got 'f16'}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x32xi8>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64, storage = i4, group = 32, activations = f16>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

// Scales are stored as f32 (absent) or f16.
func.func @bf16_scales(%x: tensor<4x8x64xf32>, %w: tensor<4x2x64x32xi8>) -> tensor<4x8x96xf32> {
  // expected-error @+2 {{#moe.packed: scales must be f16 (or absent: the body argument's element type), got 'bf16'}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x32xi8>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64, storage = i4, group = 32, scales = bf16>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

// Only quantized weights have scales.
func.func @f16_scales_of_bf16(%x: tensor<4x8x64xf32>, %w: tensor<4x2x64x64xbf16>) -> tensor<4x8x96xf32> {
  // expected-error @+2 {{#moe.packed: scales = f16 is for quantized weights (storage = i8 or i4), got storage = 'bf16'}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x64xbf16>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64, storage = bf16, scales = f16>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

func.func @f16_scales_of_f32(%x: tensor<4x8x64xf32>, %w: tensor<4x2x64x64xf32>) -> tensor<4x8x96xf32> {
  // expected-error @+2 {{#moe.packed: scales = f16 is for quantized weights (storage = i8 or i4), got no storage}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x64xf32>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64, scales = f16>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}

// -----

// The scales operand has the layout's scale type.
func.func @f32_scales_for_f16(%x: tensor<4x8x64xf32>, %w: tensor<4x2x64x32xi8>, %s: tensor<4x2x2x64xf32>) -> tensor<4x8x96xf32> {
  // expected-error @+1 {{the scales of packed weight #0 (one per group and output column) must be 'tensor<4x2x2x64xf16>' ([E, ceil(N / panel), K / group, panel]), got 'tensor<4x2x2x64xf32>'}}
  %y = moe.expert %x weights(%w : tensor<4x2x64x32xi8>) scales(%s : tensor<4x2x2x64xf32>) : tensor<4x8x64xf32> -> tensor<4x8x96xf32>
      attributes {weight_layouts = [#moe.packed<panel = 64, storage = i4, group = 32, activations = i8, scales = f16>]} {
  ^bb0(%r: tensor<8x64xf32>, %a: tensor<64x96xf32>):
    %e = tensor.empty() : tensor<8x96xf32>
    %m = linalg.matmul ins(%r, %a : tensor<8x64xf32>, tensor<64x96xf32>) outs(%e : tensor<8x96xf32>) -> tensor<8x96xf32>
    moe.yield %m : tensor<8x96xf32>
  }
  return %y : tensor<4x8x96xf32>
}
