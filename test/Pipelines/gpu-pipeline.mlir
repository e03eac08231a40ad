// Option checks of moe-gpu-pipeline: each bad value is a diagnostic that
// says what to use instead (not an LLVM fatal error in the NVPTX backend).
// RUN: not moe-opt %s --moe-gpu-pipeline="chip=gfx90a" 2>&1 | FileCheck %s --check-prefix=CHIP
// RUN: not moe-opt %s --moe-gpu-pipeline="chip=sm_90 features=+ptx70" 2>&1 | FileCheck %s --check-prefix=PTX
// RUN: not moe-opt %s --moe-gpu-pipeline="features=ptx80" 2>&1 | FileCheck %s --check-prefix=FEATURE
// RUN: not moe-opt %s --moe-gpu-pipeline="format=cubin" 2>&1 | FileCheck %s --check-prefix=FORMAT
// RUN: not moe-opt %s --moe-gpu-pipeline="block-size=100" 2>&1 | FileCheck %s --check-prefix=BLOCK
// RUN: not moe-opt %s --moe-gpu-pipeline="cuda-path=%t/none" 2>&1 | FileCheck %s --check-prefix=CUDA
// RUN: not moe-opt %s --pass-pipeline="builtin.module(func.func(moe-gpu-pipeline))" 2>&1 | FileCheck %s --check-prefix=ANCHOR

// CHIP: invalid options for 'moe-gpu-pipeline': chip 'gfx90a' is not an NVIDIA architecture; use sm_XY such as sm_80 or sm_90a
// PTX: invalid options for 'moe-gpu-pipeline': chip sm_90 needs PTX ISA 7.8 or later; use features=+ptx78 (or newer)
// FEATURE: invalid options for 'moe-gpu-pipeline': feature 'ptx80' is not understood; features are +ptxNN (the PTX ISA version), e.g. +ptx80
// FORMAT: invalid options for 'moe-gpu-pipeline': format 'cubin' is not one of isa, bin, fatbin
// BLOCK: invalid options for 'moe-gpu-pipeline': block-size must be a multiple of 32 in [32, 1024], got 100
// CUDA: invalid options for 'moe-gpu-pipeline': no libdevice at '{{.*}}/none/nvvm/libdevice/libdevice.10.bc': the NVPTX kernels need the CUDA toolkit's libdevice for math functions; set cuda-path= (or CUDA_HOME) to the toolkit
// ANCHOR: 'moe-gpu-pipeline' runs on 'builtin.module', not on 'func.func'

func.func @f() {
  return
}
