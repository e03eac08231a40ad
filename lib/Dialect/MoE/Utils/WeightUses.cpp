//===- WeightUses.cpp - How an expert body uses its weights -----*- C++ -*-===//
//
// This file implements the queries of WeightUses.h.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Utils/WeightUses.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

using namespace mlir;

bool mlir::moe::isPanelMatmulOf(Operation *op, Value weight) {
  auto matmul = dyn_cast<linalg::MatmulOp>(op);
  return matmul && !matmul.hasUserDefinedMaps() &&
         matmul.getDpsInputs()[1] == weight &&
         matmul.getDpsInputs()[0] != weight &&
         !cast<ShapedType>(matmul.getDpsInits()[0].getType()).isDynamicDim(1);
}

bool mlir::moe::hasOnlyPanelMatmulUses(Value weight) {
  Block *block = weight.getParentBlock();
  return !weight.use_empty() &&
         llvm::all_of(weight.getUsers(), [&](Operation *user) {
           return user->getBlock() == block && isPanelMatmulOf(user, weight);
         });
}
