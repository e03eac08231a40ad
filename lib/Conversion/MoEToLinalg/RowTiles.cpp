//===- RowTiles.cpp - Cutting an expert's rows into tiles -------*- C++ -*-===//
//
// This file implements emitRowTiles: full tiles of an expert's rows, then
// the rest in padded tiles, so that every tile has a static shape.
//
//===----------------------------------------------------------------------===//

#include "RowTiles.h"

#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;

Value mlir::moe::detail::emitRowTiles(OpBuilder &b, Location loc, Value count,
                                      int64_t tile, bool staticRows,
                                      bool fullTileRest, Value acc,
                                      EmitTileFn emitTile) {
  auto index = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  // Tiles of `rows` rows from `from` to `to`.
  auto tileLoop = [&](Value from, Value to, int64_t rows, Value sum) {
    auto loop = scf::ForOp::create(
        b, loc, from, to, index(rows), ValueRange{sum},
        [&](OpBuilder &tb, Location tloc, Value r0, ValueRange args) {
          scf::YieldOp::create(tb, tloc, emitTile(tb, tloc, r0, rows, args[0]));
        });
    loop->setAttr(kIndependentTilesAttrName, b.getUnitAttr());
    return loop.getResult(0);
  };
  if (staticRows)
    return tileLoop(index(0), count, tile, acc);
  Value fullEnd = arith::MulIOp::create(
      b, loc, arith::DivUIOp::create(b, loc, count, index(tile)), index(tile));
  if (tile < 8) {
    Value sum = tileLoop(index(0), fullEnd, tile, acc);
    return tileLoop(fullEnd, count, tile, sum);
  }
  Value rest;
  auto restAbove = [&](int64_t rows) -> Value {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, rest,
                                 index(rows));
  };
  if (fullTileRest) {
    rest = arith::SubIOp::create(b, loc, count, fullEnd);
    // A rest of more than 8 rows: one more full-size tile; smaller rests
    // (decode) one tile of 8, 4, 2 or 1 rows. A tile computes all its rows:
    // the 1- and 2-row tiles keep a decode token or two from computing 4
    // rows, which 4-bit weights (converted, not read, at decode) paid for
    // (1 token: 4-bit 1.4x slower than int8).
    Value sum = tileLoop(
        index(0), arith::SelectOp::create(b, loc, restAbove(8), count, fullEnd),
        tile, acc);
    for (auto [low, high] :
         {std::pair<int64_t, int64_t>{4, 8}, {2, 4}, {1, 2}, {0, 1}}) {
      Value within = arith::AndIOp::create(
          b, loc, restAbove(low),
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ule, rest,
                                index(high)));
      sum = tileLoop(fullEnd,
                     arith::SelectOp::create(b, loc, within, count, fullEnd),
                     high, sum);
    }
    return sum;
  }
  // The rest: 8-row tiles, then the last 1..7 rows in one padded tile of 4
  // rows when they fit (decode: an expert with a token or two computes half
  // the padding) or of 8, so that the weights are still read once for them.
  Value sum = tileLoop(index(0), fullEnd, tile, acc);
  rest = arith::SubIOp::create(b, loc, count, fullEnd);
  Value end8 = arith::AddIOp::create(
      b, loc, fullEnd,
      arith::MulIOp::create(
          b, loc, arith::DivUIOp::create(b, loc, rest, index(8)), index(8)));
  Value tail = arith::SubIOp::create(b, loc, count, end8);
  Value large =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, tail, index(4));
  sum = tileLoop(fullEnd, end8, 8, sum);
  sum = tileLoop(end8, arith::SelectOp::create(b, loc, large, count, end8), 8,
                 sum);
  return tileLoop(end8, arith::SelectOp::create(b, loc, large, end8, count), 4,
                  sum);
}
