//===- ExpertBody.h - Applying one expert of moe.expert ---------*- C++ -*-===//
//
// This file declares the helper that emits the body of a moe.expert for one
// expert, shared by the reference and the fused lowerings.
//
//===----------------------------------------------------------------------===//

#ifndef LIB_CONVERSION_MOETOLINALG_EXPERTBODY_H
#define LIB_CONVERSION_MOETOLINALG_EXPERTBODY_H

#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h"
#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::moe::detail {

/// Clones the body of `expert` at the rewriter's insertion point, applied to
/// `rows` (of the body's row type) and to expert `expertIndex`'s slice of
/// every weight of `weights` (and of the quantized weights' `scales`);
/// returns the yielded output rows. Packed weights are unpacked into the
/// matrix the body reads.
Value cloneExpertBody(RewriterBase &rewriter, ExpertOp expert, Value rows,
                      Value expertIndex, ValueRange weights, ValueRange scales);

/// Expert `expertIndex`'s slice of each weight (the body's weight types, or
/// the packed slice of a packed weight).
SmallVector<Value> sliceExpertWeights(RewriterBase &rewriter, ExpertOp expert,
                                      Value expertIndex, ValueRange weights);

/// Expert `expertIndex`'s slice of each scales operand of `expert`.
SmallVector<Value> sliceExpertScales(RewriterBase &rewriter, ExpertOp expert,
                                     Value expertIndex, ValueRange scales);

/// A fused tile, as the contractions by packed weights read it.
struct TileRows {
  /// The tile's (static) row count M; with activeBlocks, the most rows it
  /// may hold.
  int64_t rows;
  /// M0, a divisor of M: left-hand sides are read in [M / M0, K, M0] blocks.
  int64_t rowBlock;
  /// The body's rows already in that layout (the gather writes them so), or
  /// null to block them like any other left-hand side.
  Value blockedRows;
  /// How many of the M / M0 blocks hold rows (an index), or null for all.
  /// When set, the body's rows are those of the active blocks only
  /// (activeBlocks * M0 of them, a dynamic count), so that neither the
  /// contractions nor the elementwise work between them touch the padding
  /// rows; blockedRows still has M / M0 blocks, of which the active ones
  /// are read.
  Value activeBlocks;
};

/// Like cloneExpertBody, with the weight slices given. With `tile` (a
/// fused tile), the cloned linalg ops get the kExpertTileAttrName attribute,
/// and packed weights the body multiplies by with linalg.matmul are not
/// unpacked: those contractions run panel by panel on the packed slice, on
/// left-hand sides blocked by rows (see kPackedPanelAttrName).
Value cloneExpertBodyOn(RewriterBase &rewriter, ExpertOp expert, Value rows,
                        ValueRange weightSlices, ValueRange scaleSlices,
                        const TileRows *tile = nullptr);

// The contractions by packed panels (PanelMatmul.cpp).

struct QuantizedRows;

/// A panel's scales [P] (`scales` is [ceil(N / P), P]), or the first N of
/// them ([N]) when `panel` is null.
Value scaleColumns(RewriterBase &rewriter, Location loc, Value scales,
                   Value panel, int64_t columns);

/// `lhs` ([M, K] rows of the tile) in blocks of M0 rows, each stored
/// [K, M0] (linalg.pack, lowered).
Value blockRows(RewriterBase &rewriter, Location loc, Value lhs,
                const TileRows &tile);

/// `matmul` (rows x W, W packed in `layout`) as a loop over W's column
/// panels on the blocked left-hand side `lhs` (or, for int8 rows, on
/// `quantized`); returns the [M, N] result.
Value emitPanelMatmul(RewriterBase &rewriter, linalg::MatmulOp matmul,
                      Value lhs, const QuantizedRows *quantized, Value init,
                      Value packed, Value scales, PackedWeightAttr layout,
                      const TileRows &tile);

} // namespace mlir::moe::detail

#endif // LIB_CONVERSION_MOETOLINALG_EXPERTBODY_H
