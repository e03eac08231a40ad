//===- Passes.td - moe conversion passes -------------------*- tablegen -*-===//
//
// This file declares every convert-moe-to-* pass.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_PASSES_TD
#define MOE_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertMoEToLinalg : Pass<"convert-moe-to-linalg"> {
  let summary = "Lower moe ops to linalg, tensor, scf, arith and math on tensors";
  let description = [{
    The reference lowering of the `moe` dialect, op by op, on tensors. It is
    the oracle the fused lowerings are checked against, so it favors
    obviously correct IR over speed:

    * `moe.route`: scores in f32, a numerically stable softmax
      (`exp(x - max) / sum`) or a sigmoid, top-k selection as ranks computed
      by `linalg.generic` (an element is taken when fewer than k elements
      beat it; ties go to the lower index), grouped routing, the capacity
      assignment in `position` or `priority` order as an `scf.for` nest over
      tensors, the grouped (CSR) layout, expert choice, Soft MoE softmaxes;
    * `moe.dispatch`: a gather (`linalg.generic` reading rows through the
      ids, zero rows for empty slots) or the Soft MoE matmul in f32;
    * `moe.expert`: an `scf.forall` over experts whose body is the expert
      region applied to slices of the inputs and weights;
    * `moe.combine`: a loop over slots adding gated rows into an f32
      accumulator, or the Soft MoE matmul in f32.

    Example:

    ```mlir
    // Before
    %xe = moe.dispatch %x indices(%ids : tensor<4x8xi32>)
        : tensor<16x8xf32> -> tensor<4x8x8xf32>
    // After
    %e = tensor.empty() : tensor<4x8x8xf32>
    %xe = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1)>,
                                           affine_map<(d0, d1, d2) -> (d0, d1, d2)>],
                          iterator_types = ["parallel", "parallel", "parallel"]}
        ins(%ids : tensor<4x8xi32>) outs(%e : tensor<4x8x8xf32>) {
      ... tensor.extract %x[%row, %d] ...
    } -> tensor<4x8x8xf32>
    ```

    With `expert-tile-rows=M`, an expert body written for a dynamic row
    count (the grouped layout, or a dynamic capacity) runs instead on
    padded tiles of exactly M rows: an `scf.forall` over (expert, tile)
    gathers rows `t*M ..` of the expert (zero past its count), runs the body
    under an `scf.if` when the tile has a valid row, and inserts only the
    valid rows. Every temporary of the body then has a static shape, which
    is the form `moe-gpu-pipeline` maps to GPU blocks.

    With `combine-by-token`, a sparse `moe.combine` first builds each
    token's list of slots in slot order (a `[T, slots per token]` table,
    every entry an independent search over the slots), then computes every
    output element `[t, d]` independently as `init + sum of gate * row`
    over the token's slots in slot order -- the same sums as the loop over
    slots, bit for bit, with no loop-carried state across tokens or columns
    (the deterministic GPU combine).

    With `parallel-routing`, the routing's scans become independent
    searches with the same results bit for bit: an assignment's capacity
    slot is the number of earlier assignments (choice by choice, then by
    position or priority rank) to its expert, a dropless row is its
    expert's offset plus the earlier tokens that chose the expert, and
    `[E, C]`/CSR outputs pick the one assignment that lands on each slot.

    With `warp-lanes=L`, the softmax maxima and the top-k and expert-choice
    ranks (counts) are computed by L lanes per result, each scanning every
    L-th element, and combined by a butterfly of `gpu.shuffle xor` -- a warp
    per reduction on a GPU. Maxima and integer counts are exact in any
    order, so the results are unchanged; float sums stay sequential.
  }];
  let options = [
    Option<"expertTileRows", "expert-tile-rows", "int64_t", /*default=*/"0",
           "Rows per static tile of expert bodies written for a dynamic row "
           "count, in [1, 4096] (0: whole experts)">,
    Option<"combineByToken", "combine-by-token", "bool", /*default=*/"false",
           "Combine sparse layers per (token, column) through an inverse "
           "index instead of a loop over slots">,
    Option<"parallelRouting", "parallel-routing", "bool", /*default=*/"false",
           "Build the routing's sequential scans as independent searches "
           "(quadratic work, no loop-carried state; for GPUs)">,
    Option<"warpLanes", "warp-lanes", "int64_t", /*default=*/"0",
           "Split routing maxima and ranks over this many lanes (a power of "
           "two up to 32) combined by xor shuffles (0: off)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def ConvertMoEToFusedLinalg : Pass<"convert-moe-to-fused-linalg"> {
  let summary = "Lower moe layers with dispatch, experts and combine fused";
  let description = [{
    Like `convert-moe-to-linalg`, but a sparse layer -- a `moe.dispatch` by
    token ids feeding one `moe.expert` feeding one `moe.combine` by the same
    ids -- becomes one loop nest over experts and tiles of their assigned
    rows: each tile's token rows are read through the ids straight into the
    expert body's first contraction (a tile-sized gather, no `[E, C, D]`
    dispatch buffer), the body runs on the tile, and its output rows are
    multiplied by their gates and added into the tokens' rows of an f32
    accumulator (no `[E, C, D]` expert-output buffer either). Experts run
    in index order and rows in slot order, so results are deterministic and
    equal to the reference lowering's up to f32 summation order.

    Bodies written for a dynamic row count are tiled by `tile-rows`; a body
    written for exactly `C` rows gets one tile of all `C` rows per expert.
    Every other moe op (routes, Soft MoE, layers whose values escape the
    chain) is lowered as by `convert-moe-to-linalg`.

    Example:

    ```mlir
    // After (sketch)
    %y = scf.for %e = %c0 to %c8 step %c1 iter_args(%acc = %acc0) {
      %r = scf.for %r0 = %c0 to %count step %c64 iter_args(%a = %acc) {
        %rows = linalg.generic ... tensor.extract %x[%id, %d] ...  // [m, D]
        ... expert body on %rows ...
        %next = scf.for %i ... { ... linalg.generic acc += gate * row ... }
        scf.yield %next
      }
      scf.yield %r
    }
    ```
  }];
  let options = [
    Option<"tileRows", "tile-rows", "int64_t", /*default=*/"64",
           "Rows of an expert processed per tile (bodies with a dynamic row "
           "count), in [1, 4096]">,
    Option<"rowBlock", "row-block", "int64_t", /*default=*/"4",
           "Rows per block of the left-hand tiles of contractions by packed "
           "weights (the micro-kernel's rows; the gather writes the tile in "
           "this layout), in [1, 64]">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def ParallelExpertTiles
    : Pass<"moe-parallel-expert-tiles", "::mlir::func::FuncOp"> {
  let summary = "Run the row tiles of each expert of a fused layer in "
                "parallel";
  let description = [{
    On buffers, after `convert-moe-to-fused-linalg` and bufferization: every
    `scf.for` marked `moe.independent_tiles` (a loop over the row tiles of
    one expert, whose iterations add into disjoint output rows) becomes

    ```mlir
    scf.if %enough_tiles {
      scf.parallel (%r0) = (%lb) to (%ub) step (%step) { tile }
    } else {
      scf.for %r0 = %lb to %ub step %step { tile }
    }
    ```

    where `%enough_tiles` is a trip count of at least `min-tiles`. In the
    parallel copy, `scf.forall` loops nested in a tile (the column panels of
    its contractions) become sequential loops: the threads are busy with
    whole tiles. With fewer tiles the loop stays sequential and the panels
    keep their threads. Results are the same bits either way: each output
    row still gets its terms in the same order. A marked loop that still
    has results (not bufferized) is left sequential.
  }];
  let options = [
    Option<"minTiles", "min-tiles", "int64_t", /*default=*/"2",
           "Fewest tiles for which the loop runs in parallel, in [1, 1024]">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::scf::SCFDialect"
  ];
}

def MapLoopsToGPU : Pass<"moe-map-loops-to-gpu", "::mlir::func::FuncOp"> {
  let summary = "Run the parallel loops and memory accesses of a bufferized "
                "function in gpu.launch ops";
  let description = [{
    Maps a bufferized function (parallel work in `scf.parallel`, as left by
    `convert-linalg-to-parallel-loops` and `scf-forall-to-parallel`) onto
    the GPU so that only the device touches tensor data and the host sizes
    buffers and launches kernels:

    * a top-level parallel loop with nothing parallel inside becomes a flat
      launch of `block-size` threads per block, one thread per iteration
      (last loop dimension fastest, for coalesced accesses);
    * a top-level parallel loop with parallel loops or allocations inside
      (an expert tile, say) becomes a launch of at most `max-blocks` blocks
      that take its iterations in turn; each inner parallel loop is spread
      over the block's threads and followed by a `gpu.barrier`, other
      writes at block level run on thread 0, and each allocation becomes
      the block's shared memory (a workgroup attribution, while static
      sizes fit `shared-memory-bytes`) or a per-block slice (`memref.view`)
      of one device buffer the host allocates before the launch;
    * any other top-level op that touches memory (a sequential `scf.for`,
      say) runs in a one-block launch the same way;
    * host allocations become `gpu.alloc` and are freed with `gpu.dealloc`
      at the end unless returned (the caller then owns device memory);
    * loads whose values only device code uses move into that code; calls
      stay on the host.

    Functions with the unit attribute `moe.host` (test drivers that print,
    say) are left alone.

    Upstream's `convert-parallel-loops-to-gpu` maps perfect loop nests only;
    an expert tile has several parallel loops in sequence, which need the
    barriers this pass inserts. Ops the mapping cannot handle (parallel
    reductions, allocations sized inside the loop, device values the host
    would need) are errors that say which op and why.
  }];
  let options = [
    Option<"blockSize", "block-size", "int64_t", /*default=*/"256",
           "Threads per block">,
    Option<"maxBlocks", "max-blocks", "int64_t", /*default=*/"1024",
           "Most blocks of a launch whose blocks take loop iterations in "
           "turn (bounds the per-block scratch memory)">,
    Option<"sharedMemoryBytes", "shared-memory-bytes", "int64_t",
           /*default=*/"49152",
           "Shared memory per block for a launch's static temporaries (the "
           "rest go to global scratch)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect"
  ];
}

def GPUTensorCoreMatmuls
    : Pass<"moe-gpu-tensor-core-matmuls", "::mlir::func::FuncOp"> {
  let summary = "Rewrite f16/bf16 block contractions as warp-level mma tiles";
  let description = [{
    Rewrites each static `linalg.matmul` on buffers with f16 or bf16
    operands and an f32 accumulator, inside a loop (a GPU block's work, such as an expert
    tile's GEMMs), whose sizes are multiples of 16 x 8 x 16, as an
    `scf.parallel` over its 16 x 8 output tiles, which
    `moe-map-loops-to-gpu` gives to warps. By default each tile reads its
    accumulator, adds `vector.contract`s of 16 x 16 and 16 x 8 slices over
    K and writes it back -- warp-level vector code the host can run (the
    emulation does). With `mma-sync`, each lane loads its fragments in the
    PTX layout of `mma.m16n8k16` (A rows `lane/4` and `lane/4 + 8`, columns
    `2*(lane%4) + {0, 1}` and 8 more; B rows `2*(lane%4) + {0, 1, 8, 9}`,
    column `lane/4`) and accumulates with `nvgpu.mma.sync` for f16, or
    NVVM's `mma.sync` directly for bf16 (tensor cores, sm_80 and later).
    Other contractions (f32, odd sizes) are left as they are.
  }];
  let options = [
    Option<"mmaSync", "mma-sync", "bool", /*default=*/"false",
           "Emit per-lane fragments and nvgpu.mma.sync instead of warp-level "
           "vector.contract">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::nvgpu::NVGPUDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
}

def EmulateGPULaunches
    : Pass<"moe-gpu-emulate-launches", "::mlir::func::FuncOp"> {
  let summary = "Run gpu.launch ops as sequential loops on the host";
  let description = [{
    Replaces each `gpu.launch` by loops over its blocks and threads, run one
    after the other on the host, and `gpu.alloc`/`gpu.dealloc` by
    `memref.alloc`/`memref.dealloc`. It lets the GPU mapping be executed
    and compared with the reference on a machine without a GPU (see
    `moe-gpu-emulation-pipeline`). Running a block's threads in sequence is
    only faithful when the launch has no barrier or one thread per block, so
    a launch with a barrier and more threads is an error.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect"
  ];
}

def DumpGPUObjects : Pass<"moe-dump-gpu-objects", "::mlir::ModuleOp"> {
  let summary = "Write the objects of every gpu.binary to files";
  let description = [{
    Writes each object of each `gpu.binary` to
    `<dir>/<binary>.<chip>.<ext>`, where the extension is `ptx` for
    assembly (`format=isa`), `cubin` for `bin` and `fatbin` for `fatbin`,
    so that tests and people can read the PTX or run `ptxas -v` and
    `cuobjdump` on it. The IR is left unchanged.
  }];
  let options = [
    Option<"dir", "dir", "std::string", /*default=*/"\".\"",
           "Directory to write the objects to (created if missing)">
  ];
}

#endif // MOE_CONVERSION_PASSES_TD
