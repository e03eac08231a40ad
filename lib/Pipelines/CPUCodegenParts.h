//===- CPUCodegenParts.h - Pieces of moe-cpu-codegen ------------*- C++ -*-===//
//
// This file declares the tiling and vectorization steps that the CPU
// codegen's files share: the fused expert tiles' contractions
// (CPUCodegen.cpp) and the other matmuls of a layer, whose row count may be
// dynamic (CPURowMatmuls.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef LIB_PIPELINES_CPUCODEGENPARTS_H
#define LIB_PIPELINES_CPUCODEGENPARTS_H

#include "moe/Pipelines/CPUTarget.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::moe::detail {

/// How one contraction is tiled.
struct Blocking {
  /// Columns per thread (an scf.forall over them); N when not split.
  int64_t split;
  /// The reduction block.
  int64_t kc;
  /// The register block.
  int64_t m0, n0, k0;
  /// Whether the left-hand tile is transposed first (so that a reduction
  /// step reads its M0 values contiguously); a row block of a packed-panel
  /// contraction is [K, M0] already.
  bool transposeLhs;
};

/// Whether every operand of `op` has f32 elements (the table's register
/// blocks are f32 ones).
bool isF32Contraction(Operation *op);

/// Tiles `op` by `sizes` (0: not tiled) with `loopType` loops; returns the
/// tiled op. `loops`, when given, receives the loops made, outermost first.
FailureOr<TilingInterface>
tile(RewriterBase &rewriter, TilingInterface op, ArrayRef<int64_t> sizes,
     scf::SCFTilingOptions::LoopType loopType,
     ArrayRef<int64_t> interchange = {},
     SmallVectorImpl<LoopLikeOpInterface> *loops = nullptr);

/// Tiles and vectorizes `matmul` (static sizes) as `b` says.
/// linalg::vectorize of `op`, replacing it.
LogicalResult vectorizeInPlace(RewriterBase &rewriter, Operation *op);

LogicalResult vectorizeMatmul(RewriterBase &rewriter, linalg::MatmulOp matmul,
                              const Blocking &b);

/// Prefetches into L2, in the register blocks' reduction steps inside
/// `kcLoop` (a loop over a packed panel's KC blocks), the panel rows
/// `distance` blocks further on, so that the next block is on its way
/// while the row blocks compute on this one. The steps of the row blocks of
/// `blockLoop` (null: one block) take turns, so that each line is requested
/// once. Fails, before changing anything, where the loops are not of that
/// shape.
LogicalResult prefetchNextReductionBlock(RewriterBase &rewriter,
                                         scf::ForOp kcLoop,
                                         scf::ForOp blockLoop, Value panel,
                                         int64_t distance);

/// Adds the canonicalization patterns of every loaded dialect and op.
void addCanonicalizations(RewritePatternSet &patterns);

/// Tiles and vectorizes a linalg.matmul outside the expert tiles (the
/// router's logits) whose N and K are static and whose M may be dynamic:
/// register blocks of a full row block where M has them, single rows for
/// the rest. Leaves the op alone (success) where N has no vector width.
LogicalResult vectorizeRowMatmul(RewriterBase &rewriter,
                                 linalg::MatmulOp matmul,
                                 const CPUMicroKernel &kernel);

/// Lowers a moe.nibble_dot generic (kNibbleDotAttrName: a group of a
/// 4-bit panel times int8 rows, in i32) to vector code with `dot`'s
/// instructions, on buffers. Fails (IR untouched) on another shape.
LogicalResult lowerNibbleDot(RewriterBase &rewriter, linalg::GenericOp op,
                             CPUIntegerDot dot);

/// lowerNibbleDot on every moe.nibble_dot under `root` (buffers), with the
/// epilogue that follows each in registers where it matches.
void lowerNibbleDots(RewriterBase &rewriter, Operation *root,
                     CPUIntegerDot dot);

/// Vectorizes an elementwise op of a 4-bit panel's unpacking
/// (kPanelElementwiseAttrName) one row at a time along its innermost
/// dimension, which must be static.
LogicalResult vectorizePanelElementwise(RewriterBase &rewriter,
                                        linalg::GenericOp op);

} // namespace mlir::moe::detail

#endif // LIB_PIPELINES_CPUCODEGENPARTS_H
