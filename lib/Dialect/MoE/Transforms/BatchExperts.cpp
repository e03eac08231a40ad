//===- BatchExperts.cpp - Experts as batched ops ----------------*- C++ -*-===//
//
// This file rewrites a moe.expert over [E, R, D] inputs into the ops of its
// body with a leading expert dimension: linalg.matmul becomes
// linalg.batch_matmul, other linalg ops become linalg.generic ops with one
// more parallel loop, linalg.fill and tensor.empty gain a leading E. It is
// what makes a Soft MoE layer fully dense.
//
//===----------------------------------------------------------------------===//

#include "BatchExperts.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"

using namespace mlir;
using namespace mlir::moe;

/// Whether `op` touches no tensor (a scalar computation to clone as is).
static bool isScalarOnly(Operation *op) {
  auto isTensor = [](Type type) { return isa<TensorType>(type); };
  return op->getNumRegions() == 0 &&
         llvm::none_of(op->getOperandTypes(), isTensor) &&
         llvm::none_of(op->getResultTypes(), isTensor);
}

/// Whether `value` is a tensor constant (the one tensor that stays
/// unbatched: it is the same for every expert).
static bool isTensorConstant(Value value) {
  return isa<TensorType>(value.getType()) &&
         value.getDefiningOp<arith::ConstantOp>();
}

/// Whether `op` defines a tensor constant.
static bool definesTensorConstant(Operation &op) {
  return isa<arith::ConstantOp>(op) && isTensorConstant(op.getResult(0));
}

Operation *mlir::moe::findUnbatchableOp(ExpertOp expert) {
  if (expert.isGrouped())
    return expert;
  for (Operation &op : expert.getBody().front().without_terminator()) {
    if (isScalarOnly(&op) || isa<tensor::EmptyOp, tensor::DimOp>(op) ||
        definesTensorConstant(op))
      continue;
    auto linalgOp = dyn_cast<linalg::LinalgOp>(op);
    if (!linalgOp || !linalgOp.hasPureTensorSemantics())
      return &op;
    // Inits are written per expert: they must be batched values.
    if (llvm::any_of(linalgOp.getDpsInits(), isTensorConstant))
      return &op;
    // A matmul reading a shared constant would need a broadcast.
    if (auto matmul = dyn_cast<linalg::MatmulOp>(op))
      if (llvm::any_of(matmul.getDpsInputs(), isTensorConstant))
        return &op;
  }
  return nullptr;
}

Value mlir::moe::batchExpert(RewriterBase &rewriter, ExpertOp expert) {
  Location loc = expert.getLoc();
  Block &body = expert.getBody().front();
  int64_t numExperts = expert.getInputs().getType().getDimSize(0);
  IRMapping mapping;
  mapping.map(body.getArgument(0), expert.getInputs());
  for (auto [arg, weight] :
       llvm::zip(body.getArguments().drop_front(), expert.getWeights()))
    mapping.map(arg, weight);
  auto batchedType = [&](Type type) -> Type {
    auto tensor = cast<RankedTensorType>(type);
    SmallVector<int64_t> shape = {numExperts};
    llvm::append_range(shape, tensor.getShape());
    return RankedTensorType::get(shape, tensor.getElementType());
  };

  for (Operation &op : body.without_terminator()) {
    if (isScalarOnly(&op) || definesTensorConstant(op)) {
      rewriter.clone(op, mapping);
      continue;
    }
    if (auto empty = dyn_cast<tensor::EmptyOp>(op)) {
      SmallVector<Value> sizes;
      for (Value size : empty.getDynamicSizes())
        sizes.push_back(mapping.lookup(size));
      auto type = cast<RankedTensorType>(batchedType(empty.getType()));
      mapping.map(empty.getResult(),
                  tensor::EmptyOp::create(rewriter, loc, type, sizes));
      continue;
    }
    if (auto dim = dyn_cast<tensor::DimOp>(op)) {
      Value source = mapping.lookup(dim.getSource());
      Value index = mapping.lookup(dim.getIndex());
      if (!isTensorConstant(dim.getSource()))
        index = arith::AddIOp::create(
            rewriter, loc, index,
            arith::ConstantIndexOp::create(rewriter, loc, 1));
      mapping.map(dim.getResult(),
                  tensor::DimOp::create(rewriter, loc, source, index));
      continue;
    }
    auto linalgOp = cast<linalg::LinalgOp>(op);
    SmallVector<Value> inputs, inits;
    for (Value input : linalgOp.getDpsInputs())
      inputs.push_back(mapping.lookup(input));
    for (Value init : linalgOp.getDpsInits())
      inits.push_back(mapping.lookup(init));
    SmallVector<Type> resultTypes;
    for (Type type : op.getResultTypes())
      resultTypes.push_back(batchedType(type));

    Operation *batched;
    if (isa<linalg::FillOp>(op)) {
      batched = linalg::FillOp::create(rewriter, loc, inputs[0], inits[0]);
    } else if (isa<linalg::MatmulOp>(op) &&
               !cast<linalg::MatmulOp>(op).hasUserDefinedMaps()) {
      batched = linalg::BatchMatmulOp::create(rewriter, loc, resultTypes,
                                              inputs, inits);
    } else {
      // Any other linalg op, as a generic with a leading parallel loop.
      SmallVector<AffineMap> maps;
      for (OpOperand &operand : op.getOpOperands()) {
        AffineMap map = linalgOp.getMatchingIndexingMap(&operand).shiftDims(1);
        if (!isTensorConstant(operand.get()))
          map = map.insertResult(rewriter.getAffineDimExpr(0), 0);
        maps.push_back(map);
      }
      SmallVector<utils::IteratorType> iterators = {
          utils::IteratorType::parallel};
      llvm::append_range(iterators, linalgOp.getIteratorTypesArray());
      auto generic = linalg::GenericOp::create(rewriter, loc, resultTypes,
                                               inputs, inits, maps, iterators);
      rewriter.cloneRegionBefore(op.getRegion(0), generic.getRegion(),
                                 generic.getRegion().end(), mapping);
      // The payload's loop indices move up by one.
      generic.getRegion().walk(
          [&](linalg::IndexOp index) { index.setDim(index.getDim() + 1); });
      batched = generic;
    }
    for (auto [from, to] : llvm::zip(op.getResults(), batched->getResults()))
      mapping.map(from, to);
  }
  return mapping.lookup(expert.getYieldedValue());
}
