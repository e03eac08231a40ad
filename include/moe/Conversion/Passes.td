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
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
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
           "count)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

#endif // MOE_CONVERSION_PASSES_TD
