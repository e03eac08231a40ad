//===- MoEToLinalg.h - moe to linalg conversion -----------------*- C++ -*-===//
//
// This file declares the reference lowering of the moe dialect to linalg on
// tensors: the pass and its patterns, for reuse in other pipelines.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_MOETOLINALG_MOETOLINALG_H
#define MOE_CONVERSION_MOETOLINALG_MOETOLINALG_H

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/Pass.h"

namespace mlir {
class RewritePatternSet;
} // namespace mlir

namespace mlir::moe {

#define GEN_PASS_DECL_CONVERTMOETOLINALG
#define GEN_PASS_DECL_CONVERTMOETOFUSEDLINALG
#define GEN_PASS_DECL_PARALLELEXPERTTILES
#include "moe/Conversion/Passes.h.inc"

/// Variants of the reference lowering (the defaults are the CPU oracle).
struct MoELoweringOptions {
  /// > 0: expert bodies written for a dynamic row count run on padded static
  /// tiles of this many rows (an scf.forall over experts x tiles).
  int64_t expertTileRows = 0;
  /// Combine by slots through a per-token inverse index (gatherAddRows, the
  /// same sums bit for bit, parallel over tokens x columns) instead of a
  /// loop over slots.
  bool combineByToken = false;
  /// Build the routing's sequential scans (capacity assignment, the CSR
  /// fill, per-token sums) as independent searches: the same results, bit
  /// for bit, with quadratic work and no loop-carried state.
  bool parallelRouting = false;
  /// > 0 (a power of two up to 32): routing maxima and ranks are split over
  /// this many lanes and combined with xor shuffles (a warp per reduction);
  /// results are unchanged.
  int64_t warpLanes = 0;
};

/// Adds the patterns that lower moe.route, moe.dispatch, moe.expert and
/// moe.combine to linalg, tensor, scf, arith and math on tensors.
void populateMoEToLinalgConversionPatterns(
    RewritePatternSet &patterns, const MoELoweringOptions &options = {});

/// Lowers every moe op nested in `root` op by op (the reference lowering,
/// as a partial dialect conversion); fails with a diagnostic on an op that
/// cannot be lowered.
LogicalResult lowerMoEToLinalg(Operation *root,
                               const MoELoweringOptions &options = {});

/// Rewrites the sparse layer ending in `combine` (dispatch by ids -> expert
/// -> combine by the same ids) into one loop nest over experts and row
/// tiles with the gather and the gated scatter-add fused around the expert
/// body. Fails (IR untouched) when the chain does not have that shape.
/// Contractions by packed weights read the tile's rows in blocks of
/// `rowBlock` ([M / rowBlock, K, rowBlock]), written so by the gather.
LogicalResult fuseSparseLayer(RewriterBase &rewriter, CombineOp combine,
                              int64_t tileRows, int64_t rowBlock = 4);

/// Marks fuseSparseLayer's loops over the row tiles of one expert: their
/// iterations write disjoint output rows (an expert holds a token once), so
/// moe-parallel-expert-tiles may run them in parallel once bufferized.
constexpr llvm::StringLiteral kIndependentTilesAttrName =
    "moe.independent_tiles";

/// Marks the linalg ops of a fused tile's expert body, for the CPU codegen
/// (moe-cpu-codegen) to find them.
constexpr llvm::StringLiteral kExpertTileAttrName = "moe.expert_tile";

/// Marks the contractions of one column panel of a packed weight
/// (#moe.packed); its value is the panel width. They are
/// linalg.batch_matmul ops over row blocks: the left-hand side in blocks of
/// M0 rows, each stored [K, M0] (a reduction step reads its M0 values
/// contiguously), times one [K, P] panel broadcast to every block, into
/// [M / M0, M0, P].
constexpr llvm::StringLiteral kPackedPanelAttrName = "moe.packed_panel";

/// Fused tiles of at most this many rows (decode, small experts) use a
/// weight panel too little to keep it in L1 or to convert it once for all
/// rows: the lowering reads 4-bit panels a group at a time for them, and
/// moe-cpu-codegen streams their panels front to back.
constexpr int64_t kFewTileRows = 8;

/// Marks the elementwise linalg ops that unpack or dequantize a group of
/// rows of a 4-bit panel, which moe-cpu-codegen vectorizes row by row.
constexpr llvm::StringLiteral kPanelElementwiseAttrName =
    "moe.panel_elementwise";

/// Marks the linalg.generic that sums one group's products of int8 rows
/// and 4-bit codes in i32 (#moe.packed<..., activations = i8>): ins rows
/// [B, M0, G / 4, 4] (i8) and codes [G / 4, P / 2, 4] (i8, two per byte),
/// out [B, M0, 2, P / 2] (i32); moe-cpu-codegen lowers it to the target's
/// integer dot product instructions.
constexpr llvm::StringLiteral kNibbleDotAttrName = "moe.nibble_dot";

/// Marks the linalg.generic that adds a moe.nibble_dot's sums to the
/// result: `out + column scales * (row scales * float(sums - offsets))`,
/// ins sums [B, M0, P] (i32, the dot's result collapsed), row scales and
/// offsets [B, M0], column scales [P]; moe-cpu-codegen applies it to the
/// sums in registers when it follows the dot.
constexpr llvm::StringLiteral kNibbleDotEpilogueAttrName =
    "moe.nibble_dot_epilogue";

/// Adds a pattern applying fuseSparseLayer to every combine.
void populateFusedMoEPatterns(RewritePatternSet &patterns, int64_t tileRows,
                              int64_t rowBlock = 4);

} // namespace mlir::moe

#endif // MOE_CONVERSION_MOETOLINALG_MOETOLINALG_H
