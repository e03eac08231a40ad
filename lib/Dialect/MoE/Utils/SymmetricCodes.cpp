//===- SymmetricCodes.cpp - Symmetric integer quantization -----*- C++ -*-===//
//
// This file implements buildSymmetricCode.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Utils/SymmetricCodes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;

Value mlir::moe::buildSymmetricCode(OpBuilder &b, Location loc, Value x,
                                    Value scale, int64_t lowest,
                                    int64_t largest) {
  auto f32 = [&](double v) -> Value {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  };
  Value isZero =
      arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, scale, f32(0));
  Value divisor = arith::SelectOp::create(b, loc, isZero, f32(1), scale);
  Value rounded = math::RoundEvenOp::create(
      b, loc, arith::DivFOp::create(b, loc, x, divisor));
  Value low = arith::MaxNumFOp::create(b, loc, rounded, f32(lowest));
  Value clamped = arith::MinNumFOp::create(b, loc, low, f32(largest));
  return arith::FPToSIOp::create(b, loc, b.getI8Type(), clamped);
}
