//===- LoweringBuilder.cpp - Helpers for the moe lowerings ------*- C++ -*-===//
//
// This file implements the tensor-level helpers shared by the moe lowerings.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Utils/LoweringBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <limits>

using namespace mlir;
using namespace mlir::moe::detail;

Value LoweringBuilder::indexConst(int64_t value) {
  return arith::ConstantIndexOp::create(*this, value);
}

Value LoweringBuilder::intConst(Type type, int64_t value) {
  if (type.isIndex())
    return indexConst(value);
  return arith::ConstantIntOp::create(*this, type, value);
}

Value LoweringBuilder::floatConst(Type type, double value) {
  return arith::ConstantOp::create(*this, type, getFloatAttr(type, value));
}

OpFoldResult LoweringBuilder::size(Value tensor, int64_t dim) {
  return tensor::getMixedSize(*this, getLoc(), tensor, dim);
}

Value LoweringBuilder::sizeValue(Value tensor, int64_t dim) {
  return getValueOrCreateConstantIndexOp(*this, getLoc(), size(tensor, dim));
}

Value LoweringBuilder::empty(ArrayRef<OpFoldResult> sizes, Type elementType) {
  return tensor::EmptyOp::create(*this, sizes, elementType);
}

Value LoweringBuilder::filled(ArrayRef<OpFoldResult> sizes, Value value) {
  Value init = empty(sizes, value.getType());
  return linalg::FillOp::create(*this, value, init).getResult(0);
}

Value LoweringBuilder::convertFloat(Value scalar, Type type) {
  Type from = scalar.getType();
  if (from == type)
    return scalar;
  if (from.getIntOrFloatBitWidth() < type.getIntOrFloatBitWidth())
    return arith::ExtFOp::create(*this, type, scalar);
  return arith::TruncFOp::create(*this, type, scalar);
}

Value LoweringBuilder::convertElements(Value tensor, Type type) {
  auto tensorType = cast<RankedTensorType>(tensor.getType());
  if (tensorType.getElementType() == type)
    return tensor;
  unsigned rank = tensorType.getRank();
  SmallVector<OpFoldResult> sizes;
  SmallVector<unsigned> all;
  for (unsigned dim = 0; dim < rank; ++dim) {
    sizes.push_back(size(tensor, dim));
    all.push_back(dim);
  }
  Value init = empty(sizes, type);
  return generic(tensor, {all}, init, {all}, rank, {},
                 [&](OpBuilder &b, Location loc, ValueRange args) {
                   LoweringBuilder lb(loc, b);
                   linalg::YieldOp::create(b, loc,
                                           lb.convertFloat(args[0], type));
                 })[0];
}

AffineMap LoweringBuilder::dimsMap(unsigned numDims, ArrayRef<unsigned> dims) {
  SmallVector<AffineExpr> exprs;
  for (unsigned dim : dims)
    exprs.push_back(mlir::getAffineDimExpr(dim, getContext()));
  return AffineMap::get(numDims, 0, exprs, getContext());
}

ResultRange LoweringBuilder::generic(
    ValueRange inputs, ArrayRef<SmallVector<unsigned>> inDims,
    ValueRange outputs, ArrayRef<SmallVector<unsigned>> outDims,
    unsigned numDims, ArrayRef<unsigned> reductions, BodyFn body) {
  SmallVector<AffineMap> maps;
  for (ArrayRef<unsigned> dims : inDims)
    maps.push_back(dimsMap(numDims, dims));
  for (ArrayRef<unsigned> dims : outDims)
    maps.push_back(dimsMap(numDims, dims));
  SmallVector<utils::IteratorType> iterators(numDims,
                                             utils::IteratorType::parallel);
  for (unsigned dim : reductions)
    iterators[dim] = utils::IteratorType::reduction;
  return linalg::GenericOp::create(*this, outputs.getTypes(), inputs, outputs,
                                   maps, iterators, body)
      ->getResults();
}

Value LoweringBuilder::accumulateProducts(Value lhs, ArrayRef<unsigned> lhsDims,
                                          Value rhs, ArrayRef<unsigned> rhsDims,
                                          Value acc) {
  Type f32 = getF32Type();
  return generic(
      {lhs, rhs},
      {SmallVector<unsigned>(lhsDims), SmallVector<unsigned>(rhsDims)}, acc,
      {{0, 1}}, 3, {2}, [&](OpBuilder &b, Location loc, ValueRange args) {
        LoweringBuilder lb(loc, b);
        Value product = arith::MulFOp::create(lb, lb.convertFloat(args[0], f32),
                                              lb.convertFloat(args[1], f32));
        linalg::YieldOp::create(
            lb, arith::AddFOp::create(lb, args[2], product).getResult());
      })[0];
}

Value LoweringBuilder::softmax(Value matrix, unsigned dim) {
  Type f32 = getF32Type();
  unsigned other = 1 - dim;
  OpFoldResult kept = size(matrix, other);
  SmallVector<unsigned> both = {0, 1};
  SmallVector<unsigned> keptDims = {other};

  Value lowest = floatConst(f32, -std::numeric_limits<double>::infinity());
  auto maximum = [](OpBuilder &b, Location loc, Value x, Value y) -> Value {
    return arith::MaximumFOp::create(b, loc, x, y);
  };
  Value max;
  if (lanes > 0) {
    // Loops (kept, lane): every lanes-th element, then across the lanes.
    Value n = sizeValue(matrix, dim);
    Value partial = generic(
        {}, {}, empty({kept, getIndexAttr(lanes)}, f32), {{0, 1}}, 2, {},
        [&](OpBuilder &b, Location loc, ValueRange) {
          LoweringBuilder lb(loc, b);
          lb.setWarpLanes(lanes);
          Value k = linalg::IndexOp::create(b, loc, 0);
          Value lane = linalg::IndexOp::create(b, loc, 1);
          auto scan = scf::ForOp::create(
              b, loc, lane, n, lb.indexConst(lanes), ValueRange{lowest},
              [&](OpBuilder &fb, Location floc, Value i, ValueRange acc) {
                Value x = tensor::ExtractOp::create(
                    fb, floc, matrix,
                    dim == 0 ? ValueRange{i, k} : ValueRange{k, i});
                scf::YieldOp::create(fb, floc, maximum(fb, floc, acc[0], x));
              });
          linalg::YieldOp::create(b, loc,
                                  lb.butterfly(scan.getResult(0), maximum));
        })[0];
    max = laneZero(partial);
  } else {
    max = generic(matrix, {both}, filled({kept}, lowest), {keptDims}, 2, {dim},
                  [&](OpBuilder &b, Location loc, ValueRange args) {
                    linalg::YieldOp::create(b, loc,
                                            maximum(b, loc, args[0], args[1]));
                  })[0];
  }
  Value init = empty({size(matrix, 0), size(matrix, 1)}, f32);
  Value exps = generic({matrix, max}, {both, keptDims}, init, {both}, 2, {},
                       [](OpBuilder &b, Location loc, ValueRange args) {
                         Value shifted =
                             arith::SubFOp::create(b, loc, args[0], args[1]);
                         linalg::YieldOp::create(
                             b, loc, detail::buildRoutingExp(b, loc, shifted));
                       })[0];
  Value sum = generic(
      exps, {both}, filled({kept}, floatConst(f32, 0.0)), {keptDims}, 2, {dim},
      [](OpBuilder &b, Location loc, ValueRange args) {
        linalg::YieldOp::create(
            b, loc,
            arith::AddFOp::create(b, loc, args[0], args[1]).getResult());
      })[0];
  return generic(
      {exps, sum}, {both, keptDims}, init, {both}, 2, {},
      [](OpBuilder &b, Location loc, ValueRange args) {
        linalg::YieldOp::create(
            b, loc,
            arith::DivFOp::create(b, loc, args[0], args[1]).getResult());
      })[0];
}

Value mlir::moe::detail::buildRoutingExp(OpBuilder &b, Location loc, Value x) {
  Type f32 = b.getF32Type();
  Type i32 = b.getI32Type();
  if (x.getType() != f32)
    return math::ExpOp::create(b, loc, x);
  auto f = [&](float value) -> Value {
    return arith::ConstantOp::create(b, loc, f32, b.getF32FloatAttr(value));
  };
  auto i = [&](int32_t value) -> Value {
    return arith::ConstantOp::create(b, loc, i32, b.getI32IntegerAttr(value));
  };
  auto mul = [&](Value lhs, Value rhs) -> Value {
    return arith::MulFOp::create(b, loc, lhs, rhs);
  };
  auto add = [&](Value lhs, Value rhs) -> Value {
    return arith::AddFOp::create(b, loc, lhs, rhs);
  };
  auto sub = [&](Value lhs, Value rhs) -> Value {
    return arith::SubFOp::create(b, loc, lhs, rhs);
  };
  // NaN stays NaN; other inputs are clamped to where exp is 0 or inf anyway
  // (and NaN is kept out of the integer conversion, which would be poison).
  Value isNaN = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNO, x, x);
  Value safe = arith::SelectOp::create(b, loc, isNaN, f(0.0f), x);
  safe = arith::MinimumFOp::create(
      b, loc, arith::MaximumFOp::create(b, loc, safe, f(-104.0f)), f(89.0f));
  // k = round(x / ln 2) by the 1.5 * 2^23 trick; r = x - k ln 2 in two
  // parts (Cody-Waite; k * 0.693359375 is exact).
  Value magic = f(12582912.0f);
  Value k = sub(add(mul(safe, f(1.44269504088896341f)), magic), magic);
  Value r = sub(sub(safe, mul(k, f(0.693359375f))), mul(k, f(-2.12194440e-4f)));
  // exp(r) on [-ln2/2, ln2/2]: the Cephes expf polynomial.
  Value p = f(1.9875691500e-4f);
  for (float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f,
                  1.6666665459e-1f, 5.0000001201e-1f})
    p = add(mul(p, r), f(c));
  p = add(add(mul(p, mul(r, r)), r), f(1.0f));
  // p * 2^k as p * 2^(k/2) * 2^(k - k/2): both factors are normal numbers,
  // and the last product rounds once into the subnormal range if need be.
  Value ki = arith::FPToSIOp::create(b, loc, i32, k);
  Value k1 = arith::ShRSIOp::create(b, loc, ki, i(1));
  Value k2 = arith::SubIOp::create(b, loc, ki, k1);
  auto pow2 = [&](Value exponent) -> Value {
    Value bits = arith::ShLIOp::create(
        b, loc, arith::AddIOp::create(b, loc, exponent, i(127)), i(23));
    return arith::BitcastOp::create(b, loc, f32, bits);
  };
  Value result = mul(mul(p, pow2(k1)), pow2(k2));
  return arith::SelectOp::create(b, loc, isNaN, x, result);
}

Value LoweringBuilder::sigmoid(Value tensor) {
  auto type = cast<RankedTensorType>(tensor.getType());
  SmallVector<OpFoldResult> sizes;
  SmallVector<unsigned> all;
  for (unsigned dim = 0; dim < type.getRank(); ++dim) {
    sizes.push_back(size(tensor, dim));
    all.push_back(dim);
  }
  return generic(
      tensor, {all}, empty(sizes, type.getElementType()), {all}, type.getRank(),
      {}, [](OpBuilder &b, Location loc, ValueRange args) {
        Type t = args[0].getType();
        Value one =
            arith::ConstantOp::create(b, loc, t, b.getFloatAttr(t, 1.0));
        Value neg = arith::NegFOp::create(b, loc, args[0]);
        Value exp = detail::buildRoutingExp(b, loc, neg);
        Value den = arith::AddFOp::create(b, loc, one, exp);
        linalg::YieldOp::create(
            b, loc, arith::DivFOp::create(b, loc, one, den).getResult());
      })[0];
}

Value LoweringBuilder::butterfly(
    Value value,
    function_ref<Value(OpBuilder &, Location, Value, Value)> combine) {
  for (int64_t offset = lanes / 2; offset >= 1; offset /= 2) {
    auto shuffle = gpu::ShuffleOp::create(*this, value, offset, lanes,
                                          gpu::ShuffleMode::XOR);
    value = combine(*this, getLoc(), value, shuffle.getShuffleResult());
  }
  return value;
}

Value LoweringBuilder::laneZero(Value partial) {
  auto type = cast<RankedTensorType>(partial.getType());
  int64_t rank = type.getRank();
  SmallVector<OpFoldResult> offsets(rank, getIndexAttr(0)),
      strides(rank, getIndexAttr(1)), sizes;
  for (int64_t dim = 0; dim + 1 < rank; ++dim)
    sizes.push_back(size(partial, dim));
  sizes.push_back(getIndexAttr(1));
  auto reduced =
      RankedTensorType::get(type.getShape().drop_back(), type.getElementType());
  return tensor::ExtractSliceOp::create(*this, reduced, partial, offsets, sizes,
                                        strides);
}
