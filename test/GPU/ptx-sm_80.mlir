// REQUIRES: nvptx-registered-target, ptxas
// Every kernel moe-gpu-pipeline makes for sm_80 assembles with ptxas, without
// spills or stack frames, for each routing layout: dropless top-2 (grouped
// rows), expert choice (capacity slots) and Soft MoE.

// RUN: rm -rf %t && mkdir -p %t
// RUN: moe-opt %moe_src_root/test/Examples/mixtral-layer.mlir \
// RUN:   --moe-gpu-pipeline="chip=sm_80 features=+ptx80 format=isa" \
// RUN:   --moe-dump-gpu-objects=dir=%t/dropless -o %t/dropless.mlir
// RUN: moe-opt %moe_src_root/test/Integration/CPU/expert-choice.mlir \
// RUN:   --moe-gpu-pipeline="chip=sm_80 features=+ptx80 format=isa" \
// RUN:   --moe-dump-gpu-objects=dir=%t/expert-choice -o /dev/null
// RUN: moe-opt %moe_src_root/test/Integration/CPU/soft.mlir \
// RUN:   --moe-gpu-pipeline="chip=sm_80 features=+ptx80 format=isa" \
// RUN:   --moe-dump-gpu-objects=dir=%t/soft -o /dev/null

// In the assembly: the chip, barriers between a tile's loops, the tile's
// temporaries in shared memory, f32 products and sums rounded one by one
// (.rn, never contracted, as on the CPU), IEEE division, no local memory.
// RUN: cat %t/dropless/*.ptx | FileCheck %s --check-prefix=PTX
// PTX: .target sm_80
// PTX: .address_size 64
// PTX: .visible .entry mixtral_layer_kernel
// PTX-DAG: bar.sync 0
// PTX-DAG: mul.rn.f32
// PTX-DAG: add.rn.f32
// PTX-DAG: div.rn.f32
// PTX-DAG: ld.global
// PTX-DAG: .shared .align 4 .b8 __wg_mixtral_layer_kernel
// PTX-DAG: ld.shared.b32
// PTX-DAG: st.shared.b32
// PTX-NOT: .local

// RUN: %python %S/ptxas-report.py %ptxas sm_80 %t/dropless | FileCheck %s --check-prefix=PTXAS
// RUN: %python %S/ptxas-report.py %ptxas sm_80 %t/expert-choice | FileCheck %s --check-prefix=PTXAS
// RUN: %python %S/ptxas-report.py %ptxas sm_80 %t/soft | FileCheck %s --check-prefix=PTXAS
// PTXAS: files: {{[1-9][0-9]*}}, failed: 0, kernels: {{[1-9][0-9]*}}
// PTXAS: spill bytes: 0, stack bytes: 0

// The host side launches the embedded kernels.
// RUN: FileCheck %s --check-prefix=HOST < %t/dropless.mlir
// HOST: llvm.func @mixtral_layer(
// HOST: llvm.call @mgpuStreamCreate()
// HOST: gpu.launch_func <%{{.+}} : !llvm.ptr> @mixtral_layer_kernel::@mixtral_layer_kernel
// HOST: llvm.func @_mlir_ciface_mixtral_layer(
// HOST: gpu.binary @mixtral_layer_kernel [#gpu.object<#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80", link = ["{{.*}}/libdevice.10.bc"]>
