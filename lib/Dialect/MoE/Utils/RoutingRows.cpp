//===- RoutingRows.cpp - Token rows through a routing -----------*- C++ -*-===//
//
// This file implements the LoweringBuilder helpers that move token rows
// through routing tensors: each expert's rows of a grouped layout, the
// gather of token rows by id, and the gated scatter-add (and its per-token
// gather-add twin) of expert outputs. Every access is checked against the
// sizes, so routing data from anywhere never becomes an out-of-bounds read
// or write.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Utils/LoweringBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::moe::detail;

/// Returns whether `id` names a token of [0, numTokens), and the id as an
/// index clamped to 0 when it does not.
static std::pair<Value, Value> checkToken(LoweringBuilder &b, Value id,
                                          Value numTokens) {
  Value index = arith::IndexCastOp::create(b, b.getIndexType(), id);
  Value zero = b.indexConst(0);
  Value nonNegative =
      arith::CmpIOp::create(b, arith::CmpIPredicate::sge, index, zero);
  Value inRange =
      arith::CmpIOp::create(b, arith::CmpIPredicate::slt, index, numTokens);
  Value valid = arith::AndIOp::create(b, nonNegative, inRange);
  return {valid, arith::SelectOp::create(b, valid, index, zero)};
}

GroupBounds LoweringBuilder::groupBounds(Value offsets, Value numRows) {
  auto offsetsType = cast<RankedTensorType>(offsets.getType());
  Type intType = offsetsType.getElementType();
  int64_t numExperts = offsetsType.getDimSize(0) - 1;
  OpFoldResult experts = getIndexAttr(numExperts);
  auto read = [&](OpBuilder &b, Location loc, Value index) -> Value {
    Value offset =
        tensor::ExtractOp::create(b, loc, offsets, ValueRange{index});
    return arith::IndexCastOp::create(b, loc, b.getIndexType(), offset);
  };
  // start = max(offsets[0..e]), end = max(start, offsets[e+1]), both
  // clamped to [0, N] (signed: a negative offset is below 0): monotone
  // offsets are kept as they are, any others still give disjoint, ordered
  // ranges inside [0, N) -- no expert reads or writes another's rows.
  ResultRange bounds = generic(
      {}, {}, {empty({experts}, intType), empty({experts}, intType)},
      {{0}, {0}}, 1, {}, [&](OpBuilder &b, Location loc, ValueRange) {
        LoweringBuilder lb(loc, b);
        Value e = linalg::IndexOp::create(lb, 0);
        Value next = arith::AddIOp::create(lb, e, lb.indexConst(1));
        auto prefix = scf::ForOp::create(
            lb, lb.indexConst(0), next, lb.indexConst(1),
            ValueRange{lb.indexConst(0)},
            [&](OpBuilder &fb, Location floc, Value i, ValueRange most) {
              Value offset = read(fb, floc, i);
              scf::YieldOp::create(
                  fb, floc,
                  arith::MaxSIOp::create(fb, floc, most[0], offset)
                      .getResult());
            });
        Value start = arith::MinSIOp::create(lb, prefix.getResult(0), numRows);
        Value last = read(lb, loc, next);
        Value atLeast = arith::MaxSIOp::create(lb, last, start);
        Value end = arith::MinSIOp::create(lb, atLeast, numRows);
        Value count = arith::SubIOp::create(lb, end, start);
        Value startInt = arith::IndexCastOp::create(lb, intType, start);
        Value countInt = arith::IndexCastOp::create(lb, intType, count);
        linalg::YieldOp::create(lb, ValueRange{startInt, countInt});
      });
  return {bounds[0], bounds[1]};
}

std::pair<Value, Value> LoweringBuilder::groupRows(const GroupBounds &bounds,
                                                   Value expert) {
  auto read = [&](Value tensor) -> Value {
    Value value = tensor::ExtractOp::create(*this, tensor, ValueRange{expert});
    return arith::IndexCastOp::create(*this, getIndexType(), value);
  };
  Value start = read(bounds.starts);
  Value count = read(bounds.counts);
  return {start, count};
}

Value LoweringBuilder::gatherRows(Value tokens, Value ids, bool guardReads) {
  return gatherRowsInto(tokens, ids, guardReads, /*depthBeforeLastSlot=*/false);
}

Value LoweringBuilder::gatherRowBlocks(Value tokens, Value ids, int64_t block,
                                       Value activeBlocks) {
  auto idsType = cast<RankedTensorType>(ids.getType());
  int64_t numBlocks = idsType.getDimSize(0) / block;
  Value blocks = tensor::ExpandShapeOp::create(
      *this,
      RankedTensorType::get({numBlocks, block}, idsType.getElementType()), ids,
      SmallVector<ReassociationIndices>{{0, 1}});
  if (!activeBlocks)
    return gatherRowsInto(tokens, blocks, /*guardReads=*/false,
                          /*depthBeforeLastSlot=*/true);
  // The active blocks only, written into the full-size result in place: a
  // fine-grained expert's 24 rows in a 64-row tile gather 6 of 16 blocks.
  OpFoldResult zero = getIndexAttr(0), one = getIndexAttr(1);
  Value active = tensor::ExtractSliceOp::create(
      *this, blocks, ArrayRef<OpFoldResult>{zero, zero},
      ArrayRef<OpFoldResult>{activeBlocks, getIndexAttr(block)},
      ArrayRef<OpFoldResult>{one, one});
  Value gathered = gatherRowsInto(tokens, active, /*guardReads=*/false,
                                  /*depthBeforeLastSlot=*/true);
  OpFoldResult depth = size(tokens, 1);
  Value full = empty({getIndexAttr(numBlocks), depth, getIndexAttr(block)},
                     getElementTypeOrSelf(tokens.getType()));
  return tensor::InsertSliceOp::create(
      *this, gathered, full, ArrayRef<OpFoldResult>{zero, zero, zero},
      ArrayRef<OpFoldResult>{activeBlocks, depth, getIndexAttr(block)},
      ArrayRef<OpFoldResult>{one, one, one});
}

Value LoweringBuilder::gatherRowsInto(Value tokens, Value ids, bool guardReads,
                                      bool depthBeforeLastSlot) {
  unsigned slotRank = cast<RankedTensorType>(ids.getType()).getRank();
  // The loops are (slots..., d), or with d before the last slot dimension
  // (the rows of a block innermost: each reduction step's values of the
  // block are written together, and the block's rows are read side by
  // side); the result is indexed by the loops in order.
  unsigned depthDim = depthBeforeLastSlot ? slotRank - 1 : slotRank;
  SmallVector<OpFoldResult> sizes;
  SmallVector<unsigned> slotDims;
  for (unsigned dim = 0; dim < slotRank; ++dim) {
    sizes.push_back(size(ids, dim));
    slotDims.push_back(dim < depthDim ? dim : dim + 1);
  }
  sizes.insert(sizes.begin() + depthDim, size(tokens, 1));
  SmallVector<unsigned> allDims;
  for (unsigned dim = 0; dim <= slotRank; ++dim)
    allDims.push_back(dim);
  Value numTokens = sizeValue(tokens, 0);
  Type elementType = getElementTypeOrSelf(tokens.getType());
  // With at least one token, an invalid id reads row 0 and selects zero (a
  // body the vectorizer takes); otherwise the read itself is conditional.
  auto staticTokens = getConstantIntValue(size(tokens, 0));
  bool conditional = guardReads && !(staticTokens && *staticTokens > 0);
  return generic(
      ids, {slotDims}, empty(sizes, elementType), {allDims}, slotRank + 1, {},
      [&](OpBuilder &ob, Location loc, ValueRange args) {
        LoweringBuilder lb(loc, ob);
        Value d = linalg::IndexOp::create(lb, depthDim);
        // (Not a structured binding: the then-builder below captures `row`.)
        std::pair<Value, Value> checked = checkToken(lb, args[0], numTokens);
        Value valid = checked.first, row = checked.second;
        Value zero = lb.floatConst(elementType, 0.0);
        if (!conditional) {
          Value value =
              tensor::ExtractOp::create(lb, tokens, ValueRange{row, d});
          linalg::YieldOp::create(
              lb, arith::SelectOp::create(lb, valid, value, zero).getResult());
          return;
        }
        auto ifOp = scf::IfOp::create(
            lb, valid,
            [&](OpBuilder &tb, Location tloc) {
              scf::YieldOp::create(tb, tloc,
                                   tensor::ExtractOp::create(tb, tloc, tokens,
                                                             ValueRange{row, d})
                                       .getResult());
            },
            [&](OpBuilder &eb, Location eloc) {
              scf::YieldOp::create(eb, eloc, zero);
            });
        linalg::YieldOp::create(lb, ifOp.getResult(0));
      })[0];
}

Value LoweringBuilder::scatterAddRows(Value acc, Value ids, Value gates,
                                      Value rows) {
  Type f32 = getF32Type();
  Value numTokens = sizeValue(acc, 0);
  OpFoldResult modelDim = size(acc, 1);
  int64_t staticDim = cast<RankedTensorType>(acc.getType()).getDimSize(1);
  auto accRowType = RankedTensorType::get({staticDim}, f32);
  OpFoldResult zero = getIndexAttr(0), one = getIndexAttr(1);
  SmallVector<OpFoldResult> strides = {one, one};
  auto loop = scf::ForOp::create(
      *this, indexConst(0), sizeValue(ids, 0), indexConst(1), ValueRange{acc},
      [&](OpBuilder &ob, Location loc, Value slot, ValueRange args) {
        LoweringBuilder lb(loc, ob);
        auto checked =
            checkToken(lb, tensor::ExtractOp::create(lb, ids, ValueRange{slot}),
                       numTokens);
        Value valid = checked.first, id = checked.second;
        auto ifOp = scf::IfOp::create(
            lb, valid,
            [&](OpBuilder &tb, Location tloc) {
              LoweringBuilder tl(tloc, tb);
              Value gate = tl.convertFloat(
                  tensor::ExtractOp::create(tl, gates, ValueRange{slot}), f32);
              Value accRow = tensor::ExtractSliceOp::create(
                  tl, accRowType, args[0], ArrayRef<OpFoldResult>{id, zero},
                  ArrayRef<OpFoldResult>{one, modelDim}, strides);
              // The row is read element by element rather than through a
              // slice: a view of the rows' buffer would keep upstream's
              // hoisting from keeping the producing GEMM's accumulators in
              // registers (it treats any view of a buffer as a possible
              // alias).
              Value updated = tl.generic(
                  {}, {}, accRow, {{0}}, 1, {},
                  [&](OpBuilder &gb, Location gloc, ValueRange g) {
                    LoweringBuilder gl(gloc, gb);
                    Value element = tensor::ExtractOp::create(
                        gl, rows,
                        ValueRange{slot, linalg::IndexOp::create(gl, 0)});
                    Value term = arith::MulFOp::create(
                        gl, gate, gl.convertFloat(element, f32));
                    linalg::YieldOp::create(
                        gl, arith::AddFOp::create(gl, g[0], term).getResult());
                  })[0];
              scf::YieldOp::create(
                  tl,
                  tensor::InsertSliceOp::create(
                      tl, updated, args[0], ArrayRef<OpFoldResult>{id, zero},
                      ArrayRef<OpFoldResult>{one, modelDim}, strides)
                      .getResult());
            },
            [&](OpBuilder &eb, Location eloc) {
              scf::YieldOp::create(eb, eloc, args[0]);
            });
        scf::YieldOp::create(lb, ifOp.getResult(0));
      });
  return loop.getResult(0);
}

Value LoweringBuilder::gatherAddRows(Value acc, Value ids, Value gates,
                                     Value rows, Value maxSlotsPerToken) {
  Type f32 = getF32Type();
  Type indexType = getIndexType();
  Value numTokens = sizeValue(acc, 0);
  Value numSlots = sizeValue(ids, 0);
  auto read = [](OpBuilder &b, Location loc, Value tensor, ValueRange index) {
    return tensor::ExtractOp::create(b, loc, tensor, index).getResult();
  };

  // slotsByToken[t, j] = the j-th slot (in slot order) that names token t,
  // or -1: a search per entry over all slots, every entry independent.
  Value table = generic(
      {}, {}, empty({size(acc, 0), OpFoldResult(maxSlotsPerToken)}, indexType),
      {{0, 1}}, 2, {}, [&](OpBuilder &b, Location loc, ValueRange) {
        LoweringBuilder lb(loc, b);
        Value token = linalg::IndexOp::create(b, loc, 0);
        Value wanted = linalg::IndexOp::create(b, loc, 1);
        Value none = lb.indexConst(-1);
        auto search = scf::ForOp::create(
            b, loc, lb.indexConst(0), numSlots, lb.indexConst(1),
            ValueRange{lb.indexConst(0), none},
            [&](OpBuilder &fb, Location floc, Value slot, ValueRange state) {
              LoweringBuilder fl(floc, fb);
              auto checked =
                  checkToken(fl, read(fb, floc, ids, slot), numTokens);
              Value match = arith::AndIOp::create(
                  fb, floc, checked.first,
                  arith::CmpIOp::create(fb, floc, arith::CmpIPredicate::eq,
                                        checked.second, token));
              Value isWanted = arith::AndIOp::create(
                  fb, floc, match,
                  arith::CmpIOp::create(fb, floc, arith::CmpIPredicate::eq,
                                        state[0], wanted));
              Value count = arith::AddIOp::create(
                  fb, floc, state[0],
                  arith::SelectOp::create(fb, floc, match, fl.indexConst(1),
                                          fl.indexConst(0)));
              Value found =
                  arith::SelectOp::create(fb, floc, isWanted, slot, state[1]);
              scf::YieldOp::create(fb, floc, ValueRange{count, found});
            });
        linalg::YieldOp::create(b, loc, search.getResult(1));
      })[0];

  // acc[t, d] += gates[n] * rows[n, d] over token t's slots n, in slot order:
  // the sums scatterAddRows makes, one independent element at a time.
  return generic(
      {}, {}, acc, {{0, 1}}, 2, {},
      [&](OpBuilder &b, Location loc, ValueRange args) {
        LoweringBuilder lb(loc, b);
        Value token = linalg::IndexOp::create(b, loc, 0);
        Value column = linalg::IndexOp::create(b, loc, 1);
        auto loop = scf::ForOp::create(
            b, loc, lb.indexConst(0), maxSlotsPerToken, lb.indexConst(1),
            ValueRange{args[0]},
            [&](OpBuilder &fb, Location floc, Value j, ValueRange sum) {
              LoweringBuilder fl(floc, fb);
              Value slot = read(fb, floc, table, {token, j});
              Value present = arith::CmpIOp::create(
                  fb, floc, arith::CmpIPredicate::sge, slot, fl.indexConst(0));
              auto ifOp = scf::IfOp::create(
                  fb, floc, present,
                  [&](OpBuilder &tb, Location tloc) {
                    LoweringBuilder tl(tloc, tb);
                    Value gate =
                        tl.convertFloat(read(tb, tloc, gates, slot), f32);
                    Value row = tl.convertFloat(
                        read(tb, tloc, rows, {slot, column}), f32);
                    Value term = arith::MulFOp::create(tb, tloc, gate, row);
                    scf::YieldOp::create(
                        tb, tloc,
                        arith::AddFOp::create(tb, tloc, sum[0], term)
                            .getResult());
                  },
                  [&](OpBuilder &eb, Location eloc) {
                    scf::YieldOp::create(eb, eloc, sum[0]);
                  });
              scf::YieldOp::create(fb, floc, ifOp.getResults());
            });
        linalg::YieldOp::create(b, loc, loop.getResult(0));
      })[0];
}
