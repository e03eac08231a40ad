//===- Ranks.cpp - Ranks of scores along a dimension ------------*- C++ -*-===//
//
// This file implements LoweringBuilder::rankAlong, the ranks that top-k,
// capacity priority and expert choice select by: the float order of the
// scores with ties to the lower index, counted as an integer-key compare on
// the sequential (CPU) lowering and as the float order itself, over warp
// lanes or as a reduction loop, on the parallel (GPU) one.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Utils/LoweringBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <cstdint>

using namespace mlir;
using namespace mlir::moe::detail;

/// Whether x[other] beats x[self] for the ranks: larger, or equal with a
/// lower index, where NaN ranks below every number (-inf included) and NaNs
/// tie with each other. That is a strict total order on (value, index) for
/// any float data, so the ranks of a row are a permutation of 0..n-1 and
/// every selection built on them (top-k, capacity slots, expert choice)
/// yields a valid layout, whatever the scores.
static Value beats(OpBuilder &b, Location loc, Value self, Value selfIndex,
                   Value other, Value otherIndex) {
  Value selfNaN =
      arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNO, self, self);
  Value otherNumber =
      arith::CmpFOp::create(b, loc, arith::CmpFPredicate::ORD, other, other);
  Value larger =
      arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, other, self);
  Value aboveNaN = arith::AndIOp::create(b, loc, otherNumber, selfNaN);
  Value otherNaN =
      arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNO, other, other);
  Value bothNaN = arith::AndIOp::create(b, loc, selfNaN, otherNaN);
  Value same =
      arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, other, self);
  Value equal = arith::OrIOp::create(b, loc, same, bothNaN);
  Value lower = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                      otherIndex, selfIndex);
  Value tieWin = arith::AndIOp::create(b, loc, equal, lower);
  Value better = arith::OrIOp::create(b, loc, larger, aboveNaN);
  return arith::OrIOp::create(b, loc, better, tieWin);
}

/// Adds to `count` one for every o = from, from + step, ... < to for which
/// `wins(o)` holds, in an scf.for whose count is loop-carried (a register on
/// CPUs, which LLVM vectorizes when the reads are contiguous).
static Value countWins(LoweringBuilder &lb, Value from, Value to, int64_t step,
                       Value count,
                       function_ref<Value(OpBuilder &, Location, Value)> wins) {
  auto scan = scf::ForOp::create(
      lb, from, to, lb.indexConst(step), ValueRange{count},
      [&](OpBuilder &fb, Location floc, Value o, ValueRange acc) {
        Value inc = arith::ExtUIOp::create(fb, floc, acc[0].getType(),
                                           wins(fb, floc, o));
        scf::YieldOp::create(
            fb, floc, arith::AddIOp::create(fb, floc, acc[0], inc).getResult());
      });
  return scan.getResult(0);
}

/// How many competitors x[.., o, ..] (o = from, from + step, ... < n, o
/// replacing index `dim`) beat x[i0, i1], as a count of `type`.
static Value countBeaters(LoweringBuilder &lb, Value matrix, unsigned dim,
                          Value i0, Value i1, Value from, int64_t step, Value n,
                          Type type) {
  Value self = tensor::ExtractOp::create(lb, matrix, ValueRange{i0, i1});
  Value selfIndex = dim == 0 ? i0 : i1;
  return countWins(lb, from, n, step, lb.intConst(type, 0),
                   [&](OpBuilder &fb, Location floc, Value o) {
                     Value other = tensor::ExtractOp::create(
                         fb, floc, matrix,
                         dim == 0 ? ValueRange{o, i1} : ValueRange{i0, o});
                     return beats(fb, floc, self, selfIndex, other, o);
                   });
}

/// An i32 key of an f32 whose signed order is the order of `beats` without
/// its index tie-break: numbers by value (-0 and +0 one key), every NaN one
/// key below -inf. Equal keys are exactly the values `beats` calls equal.
static Value orderKey(OpBuilder &b, Location loc, Value value) {
  Type i32 = b.getI32Type();
  auto intConst = [&](int64_t v) {
    return arith::ConstantOp::create(b, loc, i32, b.getIntegerAttr(i32, v))
        .getResult();
  };
  Value bits = arith::BitcastOp::create(b, loc, i32, value);
  Value negative = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt,
                                         bits, intConst(0));
  // Negative numbers: flipping the magnitude bits reverses their order.
  Value flipped = arith::XOrIOp::create(b, loc, bits, intConst(0x7fffffff));
  Value key = arith::SelectOp::create(b, loc, negative, flipped, bits);
  Value zeroF = arith::ConstantOp::create(b, loc, value.getType(),
                                          b.getFloatAttr(value.getType(), 0.0));
  Value isZero =
      arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, value, zeroF);
  key = arith::SelectOp::create(b, loc, isZero, intConst(0), key);
  Value isNaN =
      arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNO, value, value);
  return arith::SelectOp::create(b, loc, isNaN, intConst(INT32_MIN), key);
}

/// Adds to `count` one for every o in [from, to) with keys[row, o] > self
/// (or >= with `orEqual`).
static Value countKeys(LoweringBuilder &lb, Value keys, Value row, Value self,
                       Value from, Value to, bool orEqual, Value count) {
  return countWins(
      lb, from, to, 1, count, [&](OpBuilder &fb, Location floc, Value o) {
        Value other =
            tensor::ExtractOp::create(fb, floc, keys, ValueRange{row, o});
        return arith::CmpIOp::create(fb, floc,
                                     orEqual ? arith::CmpIPredicate::sge
                                             : arith::CmpIPredicate::sgt,
                                     other, self);
      });
}

Value LoweringBuilder::rankAlong(Value matrix, unsigned dim, Type type,
                                 bool countInLoop) {
  Value n = sizeValue(matrix, dim);
  if (lanes > 0) {
    // Loops (i0, i1, lane): each lane counts every lanes-th competitor, then
    // the lanes' counts are added across the lanes.
    Value partial = generic(
        {}, {},
        empty({size(matrix, 0), size(matrix, 1), getIndexAttr(lanes)}, type),
        {{0, 1, 2}}, 3, {}, [&](OpBuilder &b, Location loc, ValueRange) {
          LoweringBuilder lb(loc, b);
          lb.setWarpLanes(lanes);
          Value count =
              countBeaters(lb, matrix, dim, linalg::IndexOp::create(b, loc, 0),
                           linalg::IndexOp::create(b, loc, 1),
                           linalg::IndexOp::create(b, loc, 2), lanes, n, type);
          auto add = [](OpBuilder &ob, Location oloc, Value x, Value y) {
            return arith::AddIOp::create(ob, oloc, x, y).getResult();
          };
          linalg::YieldOp::create(b, loc, lb.butterfly(count, add));
        })[0];
    return laneZero(partial);
  }
  if (countInLoop) {
    // Keys [other, counted] (the counted dimension contiguous), then loops
    // (i0, i1), each counting its competitors in two loop-carried counts: the
    // lower indices win ties (>=), the higher ones do not (>). One integer
    // compare per competitor instead of the float order of `beats`.
    unsigned other = 1 - dim;
    Value keys = generic(
        matrix,
        {dim == 0 ? SmallVector<unsigned>{1, 0} : SmallVector<unsigned>{0, 1}},
        empty({size(matrix, other), size(matrix, dim)}, getI32Type()), {{0, 1}},
        2, {}, [](OpBuilder &b, Location loc, ValueRange args) {
          linalg::YieldOp::create(b, loc, orderKey(b, loc, args[0]));
        })[0];
    return generic(
        {}, {}, empty({size(matrix, 0), size(matrix, 1)}, type), {{0, 1}}, 2,
        {}, [&](OpBuilder &b, Location loc, ValueRange) {
          LoweringBuilder lb(loc, b);
          Value row = linalg::IndexOp::create(b, loc, other);
          Value self = linalg::IndexOp::create(b, loc, dim);
          Value selfKey =
              tensor::ExtractOp::create(b, loc, keys, ValueRange{row, self});
          Value next = arith::AddIOp::create(b, loc, self, lb.indexConst(1));
          Value count = countKeys(lb, keys, row, selfKey, lb.indexConst(0),
                                  self, /*orEqual=*/true, lb.intConst(type, 0));
          count = countKeys(lb, keys, row, selfKey, next, n, /*orEqual=*/false,
                            count);
          linalg::YieldOp::create(b, loc, count);
        })[0];
  }
  // Loops (i0, i1, other): rank[i0, i1] += x[.., other, ..] beats x[i0, i1],
  // where `other` replaces loop `dim` in the second read.
  SmallVector<unsigned> otherDims = {0, 1};
  otherDims[dim] = 2;
  Value init = filled({size(matrix, 0), size(matrix, 1)}, intConst(type, 0));
  return generic(
      {matrix, matrix}, {{0, 1}, otherDims}, init, {{0, 1}}, 3, {2},
      [&](OpBuilder &b, Location loc, ValueRange args) {
        LoweringBuilder lb(loc, b);
        Value self = args[0], other = args[1], acc = args[2];
        Value selfIndex = linalg::IndexOp::create(b, loc, dim);
        Value otherIndex = linalg::IndexOp::create(b, loc, 2);
        Value inc = arith::SelectOp::create(
            b, loc, beats(b, loc, self, selfIndex, other, otherIndex),
            lb.intConst(type, 1), lb.intConst(type, 0));
        linalg::YieldOp::create(
            b, loc, arith::AddIOp::create(b, loc, acc, inc).getResult());
      })[0];
}
