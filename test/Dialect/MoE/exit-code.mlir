// Malformed and invalid IR gets a diagnostic with its location and a non-zero
// exit code (`not` fails the test if moe-opt exits 0 or crashes).
// RUN: not moe-opt %s -split-input-file 2>&1 | FileCheck %s

// CHECK: exit-code.mlir:[[@LINE+2]]:{{[0-9]+}}: error: expected ':'
func.func @missing_types(%s: tensor<4x8xf32>) {
  %0:2 = moe.route #moe.expert_choice<capacity_factor = 1.0> %s
  return
}

// -----

// CHECK: exit-code.mlir:[[@LINE+2]]:{{[0-9]+}}: error: 'moe.route' op result #0 (token ids) must be 'tensor<8x1xi32>'
func.func @verifier_error(%s: tensor<4x8xf32>) {
  %0:2 = moe.route #moe.expert_choice<capacity_factor = 1.0> %s : tensor<4x8xf32> -> tensor<8x2xi32>, tensor<8x2xf32>
  return
}

// -----

// CHECK: exit-code.mlir:[[@LINE+2]]:{{[0-9]+}}: error: custom op 'moe.gather' is unknown
func.func @unknown_op(%x: tensor<4x8xf32>) {
  %0 = moe.gather %x : tensor<4x8xf32>
  return
}
