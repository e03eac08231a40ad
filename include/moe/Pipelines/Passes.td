//===- Passes.td - moe pipeline passes ----------------------*- tablegen -*-===//
//
// The passes of the CPU pipeline that are neither a moe lowering nor a moe
// transformation: the CPU codegen of the fused tiles and the checked entry
// points.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PIPELINES_PASSES
#define MOE_PIPELINES_PASSES

include "mlir/Pass/PassBase.td"

def CPUCodegen : Pass<"moe-cpu-codegen", "::mlir::ModuleOp"> {
  let summary = "Turn the fused expert tiles' contractions into register-"
                "blocked vector code sized for the target CPU";
  let description = [{
    The CPU codegen of `moe-cpu-pipeline`, in two stages around
    bufferization, with the micro-kernel the target's features select
    (`target-cpu`, default the host; the table is in docs/cpu-codegen.md):
    an `M0 x N0` register block of `M0 * N0 / lanes` accumulators, `K0`
    reduction steps per iteration and a reduction block `KC`.

    `stage=vectorize` (on tensors): every `linalg.matmul` marked
    `moe.expert_tile` (by `convert-moe-to-fused-linalg`) whose static sizes
    tile into vector registers has its left-hand tile transposed (a
    reduction step then reads its rows' values contiguously), its columns
    split into `threads` panels (an `scf.forall`) when they divide evenly,
    its reduction blocked by KC (at most 8 for tiles of 8 rows or fewer,
    which stream each weight row once), and is tiled to `M0 x N0 x K0`
    blocks, each a `vector.contract`: `M0` is the kernel's rows or the
    largest of 4, 2, 1 dividing M; `N0` the widest multiple of the vector
    lanes up to the kernel's columns dividing N. A contraction by one panel
    of a packed weight (a `linalg.batch_matmul` over row blocks
    `[M / M0, K, M0]`, marked `moe.packed_panel`; the number of blocks may
    be dynamic) has its reduction blocked by KC outside the loop over the
    row blocks (KC = K for 8 rows or fewer, a static count), and each
    block's step tiled the same way. Only f32 contractions are vectorized;
    other contractions keep their loops.

    `stage=lower` (on buffers): folds the subviews into the vector
    transfers, hoists the accumulator transfers out of the reduction loops
    (so that the C block stays in registers) and lowers the contractions to
    outer products, i.e. FMAs on full vector registers whose left-hand
    elements are scalar loads (broadcasts from memory).

    The group sums of 4-bit panels by int8 rows (`moe.nibble_dot`) become
    vector code with the target's integer dot product at `stage=vectorize`:
    `vpdpbusd` (`llvm.x86.avx512.vpdpbusd.512`) where the CPU has
    AVX512-VNNI, `vpmaddubsw` + `vpmaddwd` on AVX512-BW or AVX2, plain
    vector arithmetic elsewhere.
  }];
  let options = [
    Option<"stage", "stage", "::mlir::moe::CPUCodegenStage",
           "::mlir::moe::CPUCodegenStage::Vectorize",
           "Which stage to run", [{::llvm::cl::values(
             clEnumValN(::mlir::moe::CPUCodegenStage::Vectorize, "vectorize",
                        "tile and vectorize the marked contractions (tensors)"),
             clEnumValN(::mlir::moe::CPUCodegenStage::Lower, "lower",
                        "hoist accumulators, lower to FMAs (buffers)"))}]>,
    Option<"threads", "threads", "int64_t", /*default=*/"1",
           "Column panels per unpacked contraction (an scf.forall over "
           "them), in [1, 1024]">,
    Option<"targetCpu", "target-cpu", "std::string", /*default=*/"\"\"",
           "The CPU whose micro-kernel to use (an x86-64 CPU name such as "
           "haswell or skylake-avx512; empty or native: the host)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
}

def CheckedEntryPoints
    : Pass<"moe-checked-entry-points", "::mlir::ModuleOp"> {
  let summary = "Give every C entry point a twin that validates its memref "
                "descriptors before running it";
  let description = [{
    For every public `func.func @f` with `llvm.emit_c_interface` whose memref
    arguments have the identity layout (the form bufferization gives function
    boundaries), adds a public `@f_checked`, also with a C interface, that
    takes the same descriptors, checks them, and calls `@f` only if all
    checks pass. The checks are branch-free integer arithmetic ending in one
    `scf.if`; for each memref argument, in this order:

    1. every dynamic size is non-negative (`MOE_ENTRY_NEGATIVE_SIZE`);
    2. every static size equals the declared one
       (`MOE_ENTRY_WRONG_STATIC_SIZE`);
    3. the aligned pointer is not null unless the memref has no element
       (`MOE_ENTRY_NULL_POINTER`);
    4. the aligned pointer is a multiple of the element's ABI alignment, which
       is what the compiled loads and stores (vector ones included) assume
       (`MOE_ENTRY_MISALIGNED_POINTER`);
    5. the offset is 0 (`MOE_ENTRY_NONZERO_OFFSET`);
    6. the strides are the contiguous row-major strides of the sizes, the
       identity layout's (`MOE_ENTRY_NOT_CONTIGUOUS`; not looked at for a
       memref without elements or for a dimension of size 1, which nothing
       steps over);

    then dynamic sizes the function ties together must be equal
    (`MOE_ENTRY_INCONSISTENT_SIZE`). A tie is derived only where `@f` itself
    requires it, so that a check never rejects an input `@f` handles: two
    operands of one `linalg` structured op (or of a `memref.copy`) that are
    arguments of `@f` and whose dimensions the op's indexing maps send to the
    same loop. Sizes that are only conventionally equal (the same `?` in two
    types) are not tied.

    The twin returns an `i32` status (`MoeEntryStatus` in
    `moe-c/Entry.h`: the kind of the first error in the low byte, the
    argument's index above it). Its arguments have fully dynamic strided
    types, so that no later fold can assume what is being checked; after the
    checks they are reinterpreted (`memref.reinterpret_cast`) as the types of
    `@f`, with the contiguous strides. If `@f` returns results (memrefs or scalars), the
    twin returns the status first, then `@f`'s results; on error those are
    zero-filled new buffers with the static sizes of their types and 0 for
    each dynamic size (zero scalars), so that the caller frees them as it
    would the real ones.

    Example:

    ```mlir
    // Before
    func.func @f(%x: memref<?x8xf32>, %y: memref<4x8xf32>)
        attributes {llvm.emit_c_interface} { ... }
    // After
    func.func @f_checked(%x: memref<?x?xf32, strided<[?, ?], offset: ?>>,
                         %y: memref<?x?xf32, strided<[?, ?], offset: ?>>)
        -> i32 attributes {llvm.emit_c_interface} {
      %base, %offset, %sizes:2, %strides:2 = memref.extract_strided_metadata %x
      %p = memref.extract_aligned_pointer_as_index %x
      ... (arith.cmpi, arith.select: the status) ...
      %ok = arith.cmpi eq, %status, %c0_i32 : i32
      scf.if %ok {
        %x2 = memref.reinterpret_cast %x to offset: [0], sizes: [%sizes#0, 8],
            strides: [8, 1] : ... to memref<?x8xf32>
        ...
        func.call @f(%x2, %y2) : (memref<?x8xf32>, memref<4x8xf32>) -> ()
      }
      return %status : i32
    }
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
  ];
}

def OpenMPDynamicSchedule
    : Pass<"moe-openmp-dynamic-schedule", "::mlir::ModuleOp"> {
  let summary = "Schedule every omp.wsloop's iterations dynamically";
  let description = [{
    Sets `schedule(dynamic)` on every `omp.wsloop` (the parallel loops that
    `convert-scf-to-openmp` makes of the column panels and row tiles), which
    upstream's conversion leaves static. A thread then takes the next
    iteration when it is done with one, instead of a fixed share: on a host
    whose cores are slowed unevenly (a shared VM, another process) the fast
    thread does not wait at the barrier for the slow one's share. The
    iterations of these loops write disjoint outputs, so results do not
    depend on the schedule.

    ```mlir
    omp.wsloop {
      omp.loop_nest (%i) : index = (%lb) to (%ub) step (%s) { ... }
    }
    // becomes
    omp.wsloop schedule(dynamic) {
      omp.loop_nest (%i) : index = (%lb) to (%ub) step (%s) { ... }
    }
    ```
  }];
  let dependentDialects = ["::mlir::omp::OpenMPDialect"];
}

def MergeSiblingForalls
    : Pass<"moe-merge-sibling-foralls", "::mlir::func::FuncOp"> {
  let summary = "Run independent neighbouring scf.forall loops on buffers as "
                "one loop";
  let description = [{
    Two 1-D, normalized `scf.forall` loops on buffers (no shared outputs)
    that follow each other in a block, with only side-effect-free ops
    between them, become one loop over both iteration spaces when neither
    writes a buffer the other reads or writes: iteration `j` runs the first
    loop's body for `j < n1`, the second's for `j - n1` otherwise. The
    buffers are compared through their views (subview, expand_shape, ...);
    buffers allocated inside a body are its own, and an access whose buffer
    is unknown keeps the loops apart.

    In the fused layer the gate and up projections of a gated expert are
    such loops (their column panels, both reading the tile's rows): merged,
    the threads share out all their panels at once, so an odd panel count
    per projection (704 columns: 11 panels of 64) no longer leaves a thread
    idle at each projection's barrier, and one barrier is gone.

    ```mlir
    scf.forall (%i) in (11) { ... writes %gate ... }
    scf.forall (%i) in (11) { ... writes %up ... }
    // becomes
    scf.forall (%j) in (22) {
      %first = arith.cmpi ult, %j, %c11 : index
      scf.if %first { ... writes %gate ... } else { ... writes %up ... }
    }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::scf::SCFDialect"];
}

#endif // MOE_PIPELINES_PASSES
