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

#include "mlir/IR/PatternMatch.h"

namespace mlir::moe::detail {

/// Clones the body of `expert` at the rewriter's insertion point, applied to
/// `rows` (of the body's row type) and to expert `expertIndex`'s slice of
/// every weight of `weights`; returns the yielded output rows. With
/// `markTile`, the cloned linalg ops get the kExpertTileAttrName attribute.
/// Packed weights are unpacked into the matrix the body reads, except
/// (with `markTile`) where the body multiplies by them with linalg.matmul:
/// those contractions run panel by panel on the packed slice.
Value cloneExpertBody(RewriterBase &rewriter, ExpertOp expert, Value rows,
                      Value expertIndex, ValueRange weights,
                      bool markTile = false);

/// Expert `expertIndex`'s slice of each weight (the body's weight types, or
/// the packed slice of a packed weight).
SmallVector<Value> sliceExpertWeights(RewriterBase &rewriter, ExpertOp expert,
                                      Value expertIndex, ValueRange weights);

/// Like cloneExpertBody, with the weight slices given.
Value cloneExpertBodyOn(RewriterBase &rewriter, ExpertOp expert, Value rows,
                        ValueRange weightSlices, bool markTile = false);

} // namespace mlir::moe::detail

#endif // LIB_CONVERSION_MOETOLINALG_EXPERTBODY_H
