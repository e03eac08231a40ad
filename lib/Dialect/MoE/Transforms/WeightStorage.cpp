//===- WeightStorage.cpp - Narrow storage of expert weights -----*- C++ -*-===//
//
// This file implements the element conversions of moe-pack-expert-weights:
// bf16 rounding and int8 quantization with one scale per output column,
// written as linalg ops so that the pack function compiles like the layer.
//
//===----------------------------------------------------------------------===//

#include "WeightStorage.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;

/// `weight` (f32) rounded to bf16, to nearest even, by integer operations
/// so that every target rounds alike (AVX512-BF16's vcvtneps2bf16 would
/// flush subnormals): bits + 0x7FFF + (bit 16 of bits), upper half; a NaN
/// becomes the quiet NaN of its sign (0x7FC0 | sign).
Value mlir::moe::detail::roundToBF16(RewriterBase &rewriter, Location loc,
                                     Value weight) {
  auto type = cast<RankedTensorType>(weight.getType());
  auto resultType = type.clone(rewriter.getBF16Type());
  Value init = tensor::EmptyOp::create(rewriter, loc, resultType.getShape(),
                                       resultType.getElementType());
  SmallVector<AffineMap> maps(2,
                              rewriter.getMultiDimIdentityMap(type.getRank()));
  SmallVector<utils::IteratorType> iterators(type.getRank(),
                                             utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      rewriter, loc, resultType, weight, init, maps, iterators,
      [](OpBuilder &b, Location l, ValueRange args) {
        Type i32 = b.getI32Type(), i16 = b.getI16Type();
        auto c32 = [&](int64_t v) -> Value {
          return arith::ConstantIntOp::create(b, l, i32, v);
        };
        Value bits = arith::BitcastOp::create(b, l, i32, args[0]);
        Value odd = arith::AndIOp::create(
            b, l, arith::ShRUIOp::create(b, l, bits, c32(16)), c32(1));
        Value rounded = arith::AddIOp::create(
            b, l, bits, arith::AddIOp::create(b, l, odd, c32(0x7FFF)));
        Value upper = arith::ShRUIOp::create(b, l, rounded, c32(16));
        Value sign = arith::AndIOp::create(
            b, l, arith::ShRUIOp::create(b, l, bits, c32(16)), c32(0x8000));
        Value quietNaN = arith::OrIOp::create(b, l, sign, c32(0x7FC0));
        Value isNaN = arith::CmpFOp::create(b, l, arith::CmpFPredicate::UNO,
                                            args[0], args[0]);
        Value chosen = arith::SelectOp::create(b, l, isNaN, quietNaN, upper);
        Value half = arith::TruncIOp::create(b, l, i16, chosen);
        linalg::YieldOp::create(
            b, l,
            ValueRange{arith::BitcastOp::create(b, l, b.getBF16Type(), half)});
      });
  return generic.getResult(0);
}

/// The i8 quantization's bound: symmetric, so -128 is never used and
/// negating a quantized weight stays exact.
static constexpr int64_t kI8Bound = 127;

moe::detail::QuantizedWeight
mlir::moe::detail::quantizeToI8(RewriterBase &rewriter, Location loc,
                                Value weight) {
  auto type = cast<RankedTensorType>(weight.getType());
  MLIRContext *context = rewriter.getContext();
  Type f32 = rewriter.getF32Type();
  int64_t experts = type.getDimSize(0), columns = type.getDimSize(2);
  AffineExpr e, k, n;
  bindDims(context, e, k, n);
  AffineMap full = AffineMap::get(3, 0, {e, k, n}, context);
  AffineMap column = AffineMap::get(3, 0, {e, n}, context);
  auto f32Const = [&](OpBuilder &b, Location l, double v) -> Value {
    return arith::ConstantOp::create(b, l, b.getF32FloatAttr(v));
  };

  // Column maxima of |W| (maxnumf: a NaN does not make the scale NaN).
  auto scaleType = RankedTensorType::get({experts, columns}, f32);
  Value zeros =
      linalg::FillOp::create(rewriter, loc, f32Const(rewriter, loc, 0.0),
                             ValueRange{tensor::EmptyOp::create(
                                 rewriter, loc, scaleType.getShape(), f32)})
          .getResult(0);
  Value maxima =
      linalg::GenericOp::create(
          rewriter, loc, scaleType, weight, zeros,
          ArrayRef<AffineMap>{full, column},
          ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                        utils::IteratorType::reduction,
                                        utils::IteratorType::parallel},
          [](OpBuilder &b, Location l, ValueRange args) {
            Value magnitude = math::AbsFOp::create(b, l, args[0]);
            linalg::YieldOp::create(
                b, l,
                ValueRange{arith::MaxNumFOp::create(b, l, args[1], magnitude)});
          })
          .getResult(0);
  AffineMap identity2 = rewriter.getMultiDimIdentityMap(2);
  SmallVector<utils::IteratorType> parallel2(2, utils::IteratorType::parallel);
  Value scales =
      linalg::GenericOp::create(
          rewriter, loc, scaleType, maxima,
          ValueRange{tensor::EmptyOp::create(rewriter, loc,
                                             scaleType.getShape(), f32)},
          ArrayRef<AffineMap>{identity2, identity2}, parallel2,
          [&](OpBuilder &b, Location l, ValueRange args) {
            linalg::YieldOp::create(
                b, l,
                ValueRange{arith::DivFOp::create(
                    b, l, args[0], f32Const(b, l, double(kI8Bound)))});
          })
          .getResult(0);

  // q = clamp(round_half_even(W / s)); a zero column divides by 1. The
  // clamp (maxnumf/minnumf) also maps a NaN to a bound, so that the
  // conversion to i8 is defined for every input.
  auto quantizedType = type.clone(rewriter.getI8Type());
  SmallVector<utils::IteratorType> parallel3(3, utils::IteratorType::parallel);
  Value quantized =
      linalg::GenericOp::create(
          rewriter, loc, quantizedType, ValueRange{weight, scales},
          ValueRange{tensor::EmptyOp::create(
              rewriter, loc, quantizedType.getShape(), rewriter.getI8Type())},
          ArrayRef<AffineMap>{full, column, full}, parallel3,
          [&](OpBuilder &b, Location l, ValueRange args) {
            Value isZero = arith::CmpFOp::create(
                b, l, arith::CmpFPredicate::OEQ, args[1], f32Const(b, l, 0.0));
            Value divisor = arith::SelectOp::create(
                b, l, isZero, f32Const(b, l, 1.0), args[1]);
            Value ratio = arith::DivFOp::create(b, l, args[0], divisor);
            Value rounded = math::RoundEvenOp::create(b, l, ratio);
            Value low = arith::MaxNumFOp::create(
                b, l, rounded, f32Const(b, l, -double(kI8Bound)));
            Value clamped = arith::MinNumFOp::create(
                b, l, low, f32Const(b, l, double(kI8Bound)));
            linalg::YieldOp::create(b, l,
                                    ValueRange{arith::FPToSIOp::create(
                                        b, l, b.getI8Type(), clamped)});
          })
          .getResult(0);
  return {quantized, scales};
}
