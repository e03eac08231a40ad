//===- SymmetricCodes.cpp - Symmetric integer quantization -----*- C++ -*-===//
//
// This file implements quantizeSymmetric.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Utils/SymmetricCodes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;

static Value f32Const(OpBuilder &b, Location loc, double v) {
  return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
}

moe::SymmetricCodes mlir::moe::quantizeSymmetric(RewriterBase &rewriter,
                                                 Location loc, Value input,
                                                 unsigned dim, int64_t lowest,
                                                 int64_t largest) {
  auto type = cast<RankedTensorType>(input.getType());
  Type f32 = rewriter.getF32Type(), i8 = rewriter.getI8Type();
  unsigned rank = type.getRank();
  AffineMap full = rewriter.getMultiDimIdentityMap(rank);
  AffineMap reduced = full.dropResult(dim);
  AffineMap identity = rewriter.getMultiDimIdentityMap(rank - 1);
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(rewriter, loc, input);
  SmallVector<OpFoldResult> scaleSizes(sizes);
  scaleSizes.erase(scaleSizes.begin() + dim);
  SmallVector<int64_t> scaleShape(type.getShape());
  scaleShape.erase(scaleShape.begin() + dim);
  auto scaleType = RankedTensorType::get(scaleShape, f32);
  SmallVector<utils::IteratorType> iterators(rank,
                                             utils::IteratorType::parallel);
  iterators[dim] = utils::IteratorType::reduction;
  Value zeros =
      linalg::FillOp::create(
          rewriter, loc, f32Const(rewriter, loc, 0.0),
          ValueRange{tensor::EmptyOp::create(rewriter, loc, scaleSizes, f32)})
          .getResult(0);
  Value maxima =
      linalg::GenericOp::create(
          rewriter, loc, scaleType, input, zeros,
          ArrayRef<AffineMap>{full, reduced}, iterators,
          [](OpBuilder &b, Location l, ValueRange args) {
            Value magnitude = math::AbsFOp::create(b, l, args[0]);
            linalg::YieldOp::create(
                b, l,
                ValueRange{arith::MaxNumFOp::create(b, l, args[1], magnitude)});
          })
          .getResult(0);
  Value scales =
      linalg::GenericOp::create(
          rewriter, loc, scaleType, maxima,
          ValueRange{tensor::EmptyOp::create(rewriter, loc, scaleSizes, f32)},
          ArrayRef<AffineMap>{identity, identity},
          SmallVector<utils::IteratorType>(rank - 1,
                                           utils::IteratorType::parallel),
          [&](OpBuilder &b, Location l, ValueRange args) {
            linalg::YieldOp::create(
                b, l,
                ValueRange{arith::DivFOp::create(b, l, args[0],
                                                 f32Const(b, l, largest))});
          })
          .getResult(0);
  Value values =
      linalg::GenericOp::create(
          rewriter, loc, type.clone(i8), ValueRange{input, scales},
          ValueRange{tensor::EmptyOp::create(rewriter, loc, sizes, i8)},
          ArrayRef<AffineMap>{full, reduced, full},
          SmallVector<utils::IteratorType>(rank, utils::IteratorType::parallel),
          [&](OpBuilder &b, Location l, ValueRange args) {
            Value isZero = arith::CmpFOp::create(
                b, l, arith::CmpFPredicate::OEQ, args[1], f32Const(b, l, 0));
            Value divisor = arith::SelectOp::create(b, l, isZero,
                                                    f32Const(b, l, 1), args[1]);
            Value rounded = math::RoundEvenOp::create(
                b, l, arith::DivFOp::create(b, l, args[0], divisor));
            Value low =
                arith::MaxNumFOp::create(b, l, rounded, f32Const(b, l, lowest));
            Value clamped =
                arith::MinNumFOp::create(b, l, low, f32Const(b, l, largest));
            linalg::YieldOp::create(
                b, l, ValueRange{arith::FPToSIOp::create(b, l, i8, clamped)});
          })
          .getResult(0);
  return {values, scales};
}
