// RUN: moe-opt %s --pass-pipeline='builtin.module(moe-cpu-pipeline{threads=1})' | FileCheck %s
// RUN: moe-opt %s --pass-pipeline='builtin.module(moe-cpu-pipeline{vectorize=false})' \
// RUN:   | FileCheck %s --check-prefix=LIBM

// With the CPU codegen, f32 exp (an expert body's silu or sigmoid) becomes
// upstream's polynomial: range reduction by ln 2, a polynomial, the power
// of two built in the exponent bits -- arithmetic that LLVM vectorizes with
// the loop around it. Without it, exp stays the intrinsic (libm's expf).
// CHECK-LABEL: llvm.func @silu
// CHECK-NOT:     llvm.intr.exp
// CHECK:         llvm.intr.fma
// CHECK:         llvm.shl
// CHECK:         llvm.bitcast {{.*}} : i32 to f32
// CHECK-NOT:     llvm.intr.exp
// CHECK:         llvm.return
// LIBM-LABEL:  llvm.func @silu
// LIBM:          llvm.intr.exp
func.func @silu(%x: tensor<64x32xf32>) -> tensor<64x32xf32> {
  %one = arith.constant 1.0 : f32
  %e = tensor.empty() : tensor<64x32xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<64x32xf32>) outs(%e : tensor<64x32xf32>) {
  ^bb0(%a: f32, %unused: f32):
    %neg = arith.negf %a : f32
    %exp = math.exp %neg : f32
    %den = arith.addf %one, %exp : f32
    %act = arith.divf %a, %den : f32
    linalg.yield %act : f32
  } -> tensor<64x32xf32>
  return %y : tensor<64x32xf32>
}
