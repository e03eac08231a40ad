// Debian's own mlir-opt, with moe-mlir loaded as a dialect and pass plugin,
// parses moe IR and runs the moe passes and pipelines.
// RUN: mlir-opt %s --load-dialect-plugin=%moe_libs/MoEPlugin.so --load-pass-plugin=%moe_libs/MoEPlugin.so \
// RUN:   --pass-pipeline='builtin.module(moe-token-to-expert-choice)' | FileCheck %s
// RUN: mlir-opt %s --load-dialect-plugin=%moe_libs/MoEPlugin.so --load-pass-plugin=%moe_libs/MoEPlugin.so \
// RUN:   --pass-pipeline='builtin.module(moe-cpu-pipeline)' | FileCheck %s --check-prefix=LLVM
// RUN: not mlir-opt %s --load-dialect-plugin=%moe_libs/MoEPlugin.so --load-pass-plugin=%moe_libs/MoEPlugin.so \
// RUN:   --pass-pipeline='builtin.module(moe-cpu-pipeline{fast=1})' 2>&1 | FileCheck %s --check-prefix=BAD

// CHECK-LABEL: func.func @route
// CHECK:         moe.route #moe.expert_choice<capacity_factor = 2.0> %{{.+}} : tensor<16x8xf32> -> tensor<8x4xi32>, tensor<8x4xf32>

// LLVM:        llvm.func @_mlir_ciface_route(%{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr) attributes {llvm.emit_c_interface}

// BAD:         invalid options for 'moe-cpu-pipeline': 'fast=1': <Pass-Options-Parser>: no such option fast

func.func @route(%s: tensor<16x8xf32>) -> (tensor<8x4xi32>, tensor<8x4xf32>) {
  %ids, %gates = moe.route #moe.token_choice<top_k = 2, capacity_factor = 1.0> %s
      : tensor<16x8xf32> -> tensor<8x4xi32>, tensor<8x4xf32>
  return %ids, %gates : tensor<8x4xi32>, tensor<8x4xf32>
}
