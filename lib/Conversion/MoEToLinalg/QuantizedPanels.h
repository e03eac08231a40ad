//===- QuantizedPanels.h - Scaled and 4-bit weight panels -------*- C++ -*-===//
//
// This file declares the pieces of the fused tiles that read quantized
// panels (#moe.packed<storage = i8 | i4>): the scaled accumulation of a
// panel's sums, and the 4-bit panels' unpacking and group loop.
//
//===----------------------------------------------------------------------===//

#ifndef LIB_CONVERSION_MOETOLINALG_QUANTIZEDPANELS_H
#define LIB_CONVERSION_MOETOLINALG_QUANTIZEDPANELS_H

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/IR/PatternMatch.h"

namespace mlir::moe::detail {

/// The element type of a quantized weight's `scales`: f32, or f16 for
/// `#moe.packed<..., scales = f16>`.
Type scaleElementType(Value scales);

/// A scale read from `scales` (`scale`, f32 or f16) as f32 (exact).
Value widenScale(OpBuilder &b, Location loc, Value scale);

/// `out + scales * sums`, the scales [P] broadcast over the rows of the
/// [blocks, M0, P] sums (marked as part of an expert tile).
Value addScaled(RewriterBase &rewriter, Location loc, Value sums, Value scales,
                Value out);

/// The logical [K, N] f32 matrix of a 4-bit packed slice ([ceil(N / P), K,
/// P / 2] bytes) and its scales ([ceil(N / P), K / G, P]).
Value unpackNibbleSlice(RewriterBase &rewriter, Location loc, Value packed,
                        Value scales, PackedWeightAttr layout,
                        RankedTensorType logical);

/// Adds `lhs x panel` to `out` ([blocks, M0, P]) for column panel `panel`
/// of a 4-bit packed slice, one group of G rows at a time: the group's
/// bytes unpacked to a [G, P] i8 panel (L1-sized), multiplied from zero by
/// the group's rows of `lhs` ([blocks, K, M0], the first `blockCount`
/// blocks), and added times the group's scales. Returns the new `out`.
Value emitNibblePanel(RewriterBase &rewriter, Location loc, Value lhs,
                      OpFoldResult blockCount, Value packed, Value scales,
                      Value panel, PackedWeightAttr layout, Value out);

/// Adds `lhs x panel` to `out` as emitNibblePanel does, for tiles of many
/// rows (prefill): the panel is dequantized to f32 a block of rows (up to
/// 128, a multiple of G) at a time, into one L1-sized buffer, which the f32
/// tile contraction multiplies by all the tile's row blocks. The
/// conversion, once per weight per tile, is shared by all its rows; the
/// sums stay in the tile's registers across groups.
Value emitDequantizedNibblePanel(RewriterBase &rewriter, Location loc,
                                 Value lhs, OpFoldResult blockCount,
                                 Value packed, Value scales, Value panel,
                                 PackedWeightAttr layout, Value out);

} // namespace mlir::moe::detail

#endif // LIB_CONVERSION_MOETOLINALG_QUANTIZEDPANELS_H
