//===- ExpertBody.cpp - Applying one expert of moe.expert -------*- C++ -*-===//
//
// This file implements cloneExpertBody: the expert region with its block
// arguments bound to one expert's rows and weight slices.
//
//===----------------------------------------------------------------------===//

#include "ExpertBody.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"

using namespace mlir;
using namespace mlir::moe;

SmallVector<Value> mlir::moe::detail::sliceExpertWeights(RewriterBase &rewriter,
                                                         ExpertOp expert,
                                                         Value expertIndex,
                                                         ValueRange weights) {
  Location loc = expert.getLoc();
  Block &region = expert.getBody().front();
  OpFoldResult zero = rewriter.getIndexAttr(0), one = rewriter.getIndexAttr(1);
  SmallVector<Value> slices;
  for (auto [index, weight] : llvm::enumerate(weights)) {
    auto weightType = cast<RankedTensorType>(weight.getType());
    auto sliceType =
        cast<RankedTensorType>(region.getArgument(index + 1).getType());
    SmallVector<OpFoldResult> offsets(weightType.getRank(), zero);
    SmallVector<OpFoldResult> sizes = {one};
    SmallVector<OpFoldResult> strides(weightType.getRank(), one);
    offsets[0] = expertIndex;
    for (unsigned dim = 1; dim < weightType.getRank(); ++dim)
      sizes.push_back(tensor::getMixedSize(rewriter, loc, weight, dim));
    slices.push_back(tensor::ExtractSliceOp::create(
        rewriter, loc, sliceType, weight, offsets, sizes, strides));
  }
  return slices;
}

Value mlir::moe::detail::cloneExpertBodyOn(RewriterBase &rewriter,
                                           ExpertOp expert, Value rows,
                                           ValueRange weightSlices,
                                           bool markTile) {
  Block &region = expert.getBody().front();
  IRMapping mapping;
  mapping.map(region.getArgument(0), rows);
  for (auto [index, slice] : llvm::enumerate(weightSlices))
    mapping.map(region.getArgument(index + 1), slice);
  for (Operation &op : region.without_terminator()) {
    Operation *clone = rewriter.clone(op, mapping);
    if (markTile)
      clone->walk([&](Operation *nested) {
        if (isa<linalg::LinalgOp>(nested))
          nested->setAttr(kExpertTileAttrName, rewriter.getUnitAttr());
      });
  }
  return mapping.lookup(expert.getYieldedValue());
}

Value mlir::moe::detail::cloneExpertBody(RewriterBase &rewriter,
                                         ExpertOp expert, Value rows,
                                         Value expertIndex, ValueRange weights,
                                         bool markTile) {
  SmallVector<Value> slices =
      sliceExpertWeights(rewriter, expert, expertIndex, weights);
  return cloneExpertBodyOn(rewriter, expert, rows, slices, markTile);
}
