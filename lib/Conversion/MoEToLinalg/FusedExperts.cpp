//===- FusedExperts.cpp - convert-moe-to-fused-linalg -----------*- C++ -*-===//
//
// This file fuses a sparse layer's dispatch, expert and combine into one
// loop nest over experts and tiles of their rows: a tile-sized gather into
// the expert body and a gated scatter-add of its output rows, with neither
// the [E, C, D] dispatch buffer nor the expert-output buffer.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h"

#include "ExpertBody.h"
#include "Patterns.h"
#include "RowTiles.h"

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Utils/LoweringBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/TypeUtilities.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETOFUSEDLINALG
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

/// Experts with at least this many rows read padded copies of weights whose
/// rows alias in the caches (see below).
constexpr int64_t kPadMinRows = 16;

/// The largest divisor of `size` that is at most `most` (1 for no rows).
static int64_t largestDivisorUpTo(int64_t size, int64_t most) {
  int64_t d = std::max<int64_t>(1, std::min(size, most));
  while (size % d != 0)
    --d;
  return d;
}

/// The most rows any expert has in the grouped layout.
static Value maxGroupSize(LoweringBuilder &b, const GroupBounds &bounds,
                          int64_t numExperts) {
  return scf::ForOp::create(
             b, b.indexConst(0), b.indexConst(numExperts), b.indexConst(1),
             ValueRange{b.indexConst(0)},
             [&](OpBuilder &fb, Location loc, Value e, ValueRange most) {
               LoweringBuilder lb(loc, fb);
               Value size = lb.groupRows(bounds, e).second;
               scf::YieldOp::create(
                   fb, loc,
                   ValueRange{arith::MaxUIOp::create(fb, loc, most[0], size)});
             })
      .getResult(0);
}

LogicalResult mlir::moe::fuseSparseLayer(RewriterBase &rewriter,
                                         CombineOp combine, int64_t tileRows,
                                         int64_t rowBlock) {
  Value ids = combine.getIndices();
  if (!ids)
    return failure();
  auto expert = combine.getExpertOutputs().getDefiningOp<ExpertOp>();
  if (!expert || !expert->hasOneUse())
    return failure();
  auto dispatch = expert.getInputs().getDefiningOp<DispatchOp>();
  if (!dispatch || dispatch.getIndices() != ids || !dispatch->hasOneUse())
    return failure();
  auto resultType = cast<RankedTensorType>(expert.getResult().getType());
  if (resultType.isDynamicDim(resultType.getRank() - 1))
    return failure();

  Location loc = combine.getLoc();
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(combine);
  LoweringBuilder b(loc, rewriter);
  Type f32 = b.getF32Type();
  Value init = combine.getInit();
  Value tokens = dispatch.getTokens(), gates = combine.getWeights();
  bool grouped = expert.isGrouped();
  Value offsets = expert.getOffsets();
  int64_t numExperts =
      grouped ? cast<RankedTensorType>(offsets.getType()).getDimSize(0) - 1
              : cast<RankedTensorType>(ids.getType()).getDimSize(0);
  RankedTensorType rowsType = expert.getExpertRowsType();
  bool staticRows = !rowsType.isDynamicDim(0);
  int64_t tile = staticRows ? rowsType.getDimSize(0) : tileRows;
  OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);

  // Weight rows a multiple of 4 KiB apart all fall into the same few cache
  // sets, so a column panel of them does not stay in L1 (or L2) while the
  // row blocks sweep it. When an expert has kPadMinRows rows or more (two
  // tiles), its tiles read copies whose rows are 64 bytes longer (the same
  // values, a padded row stride); decode-sized experts keep the originals,
  // as the copy would cost them more than it saves. The padded buffers are
  // allocated once, before the expert loop, and carried through it (so that
  // they bufferize to one allocation each, not one per expert); with no
  // row in them (no allocation to speak of) when no expert has enough rows.
  Block &region = expert.getBody().front();
  SmallVector<bool> aliased;
  SmallVector<RankedTensorType> paddedTypes;
  for (BlockArgument weightSlice : region.getArguments().drop_front()) {
    auto type = cast<RankedTensorType>(weightSlice.getType());
    unsigned bits = type.getElementTypeBitWidth();
    // (Packed panels are read front to back: no rows to alias.)
    bool bad = !expert.getWeightLayout(weightSlice.getArgNumber() - 1) &&
               type.getRank() == 2 && type.hasStaticShape() &&
               (type.getDimSize(1) * bits / 8) % 4096 == 0;
    aliased.push_back(bad);
    if (bad)
      paddedTypes.push_back(RankedTensorType::get(
          {type.getDimSize(0), type.getDimSize(1) + 512 / int64_t(bits)},
          type.getElementType()));
  }
  // Each expert's rows of the grouped layout, computed once.
  GroupBounds bounds;
  if (grouped)
    bounds = b.groupBounds(offsets, b.sizeValue(ids, 0));
  bool anyAliased = !paddedTypes.empty();
  SmallVector<Value> padInits = {b.convertElements(init, f32)};
  if (anyAliased) {
    Value mostRows =
        grouped ? maxGroupSize(b, bounds, numExperts) : b.sizeValue(ids, 1);
    Value needed = arith::CmpIOp::create(b, arith::CmpIPredicate::uge, mostRows,
                                         b.indexConst(kPadMinRows));
    for (RankedTensorType type : paddedTypes) {
      Value rows = arith::SelectOp::create(
          b, needed, b.indexConst(type.getDimSize(0)), b.indexConst(0));
      // Not tensor.empty: CSE would merge equal ones into one value, and
      // the loop's buffers for different weights into one allocation.
      padInits.push_back(bufferization::AllocTensorOp::create(
          b,
          RankedTensorType::get({ShapedType::kDynamic, type.getDimSize(1)},
                                type.getElementType()),
          ValueRange{rows}));
    }
  }
  SmallVector<OpFoldResult> zeros2(2, zero), ones2(2, one);
  bool anyPacked = false;
  for (unsigned i = 0, e = expert.getWeights().size(); i < e; ++i)
    anyPacked |= static_cast<bool>(expert.getWeightLayout(i));

  // Without tokens there is nothing to gather (and no row 0 to read for the
  // empty slots), whatever routing tensors came in: no expert runs.
  Value expertCount = b.indexConst(numExperts);
  if (std::optional<int64_t> staticTokens =
          getConstantIntValue(b.size(tokens, 0))) {
    if (*staticTokens == 0)
      expertCount = b.indexConst(0);
  } else {
    Value anyToken = arith::CmpIOp::create(
        b, arith::CmpIPredicate::ne, b.sizeValue(tokens, 0), b.indexConst(0));
    expertCount =
        arith::SelectOp::create(b, anyToken, expertCount, b.indexConst(0));
  }
  auto experts = scf::ForOp::create(
      b, b.indexConst(0), expertCount, b.indexConst(1), padInits,
      [&](OpBuilder &ob, Location eloc, Value e, ValueRange expertArgs) {
        LoweringBuilder eb(eloc, ob);
        // The expert's slots: row e of [E, C], or offsets[e]..offsets[e+1]
        // of [N].
        Value idsE, gatesE, count;
        auto slice1D = [&](Value source, OpFoldResult offset,
                           OpFoldResult size) -> Value {
          auto type = RankedTensorType::get(
              {getConstantIntValue(size).value_or(ShapedType::kDynamic)},
              getElementTypeOrSelf(source.getType()));
          return tensor::ExtractSliceOp::create(
              eb, type, source, ArrayRef<OpFoldResult>{offset},
              ArrayRef<OpFoldResult>{size}, ArrayRef<OpFoldResult>{one});
        };
        if (grouped) {
          Value start;
          std::tie(start, count) = eb.groupRows(bounds, e);
          idsE = slice1D(ids, start, count);
          gatesE = slice1D(gates, start, count);
        } else {
          OpFoldResult slots = eb.size(ids, 1);
          auto rowOf = [&](Value source) -> Value {
            auto type = RankedTensorType::get(
                {cast<RankedTensorType>(source.getType()).getDimSize(1)},
                getElementTypeOrSelf(source.getType()));
            return tensor::ExtractSliceOp::create(
                eb, type, source, ArrayRef<OpFoldResult>{e, zero},
                ArrayRef<OpFoldResult>{one, slots},
                ArrayRef<OpFoldResult>{one, one});
          };
          idsE = rowOf(ids);
          gatesE = rowOf(gates);
          count = eb.sizeValue(ids, 1);
        }

        // One tile: `size` rows from slot r0 on, a static shape; slots past
        // `count` read as empty (id -1, gate 0) and are skipped by the
        // scatter.
        // The scales of quantized weights (set below, before any tile).
        SmallVector<Value> scaleSlices;
        auto emitTile = [&](OpBuilder &tb, Location tloc, Value r0,
                            int64_t size, Value acc,
                            ValueRange slices) -> Value {
          LoweringBuilder lb(tloc, tb);
          Type idType = getElementTypeOrSelf(idsE.getType());
          Type gateType = getElementTypeOrSelf(gatesE.getType());
          OpFoldResult m = lb.getIndexAttr(size);
          ResultRange slots = lb.generic(
              {}, {}, {lb.empty({m}, idType), lb.empty({m}, gateType)},
              {{0}, {0}}, 1, {}, [&](OpBuilder &gb, Location gloc, ValueRange) {
                LoweringBuilder gl(gloc, gb);
                Value slot = arith::AddIOp::create(
                    gl, r0, linalg::IndexOp::create(gl, 0));
                Value inside = arith::CmpIOp::create(
                    gl, arith::CmpIPredicate::slt, slot, count);
                Value safe =
                    arith::SelectOp::create(gl, inside, slot, gl.indexConst(0));
                Value id = arith::SelectOp::create(
                    gl, inside,
                    tensor::ExtractOp::create(gl, idsE, ValueRange{safe}),
                    gl.intConst(idType, -1));
                Value gate = arith::SelectOp::create(
                    gl, inside,
                    tensor::ExtractOp::create(gl, gatesE, ValueRange{safe}),
                    gl.floatConst(gateType, 0.0));
                linalg::YieldOp::create(gl, ValueRange{id, gate});
              });
          // Contractions by packed weights read the rows in blocks, which
          // the gather writes as such.
          TileRows tileLayout{size, largestDivisorUpTo(size, rowBlock), Value(),
                              Value()};
          Value ids = slots[0], weights = slots[1];
          if (anyPacked && !staticRows) {
            // A tile of a dynamic row count may hold fewer rows than it has:
            // the body runs on the blocks that hold some, and the scatter
            // reads their slots.
            Value block = lb.indexConst(tileLayout.rowBlock);
            Value left = arith::SubIOp::create(lb, count, r0);
            Value blocks = arith::DivUIOp::create(
                lb,
                arith::AddIOp::create(lb, left,
                                      lb.indexConst(tileLayout.rowBlock - 1)),
                block);
            tileLayout.activeBlocks = arith::MinUIOp::create(
                lb, blocks, lb.indexConst(size / tileLayout.rowBlock));
            Value activeRows =
                arith::MulIOp::create(lb, tileLayout.activeBlocks, block);
            auto activeSlots = [&](Value slotValues) -> Value {
              return tensor::ExtractSliceOp::create(
                  lb, slotValues, ArrayRef<OpFoldResult>{lb.getIndexAttr(0)},
                  ArrayRef<OpFoldResult>{activeRows},
                  ArrayRef<OpFoldResult>{lb.getIndexAttr(1)});
            };
            ids = activeSlots(ids);
            weights = activeSlots(weights);
          }
          // The gather feeds the body's first contraction directly.
          // (No expert runs when T = 0, so row 0 exists here.)
          Value rows = lb.gatherRows(tokens, ids, /*guardReads=*/false);
          if (rows.getType() != rowsType)
            rows = tensor::CastOp::create(lb, rowsType, rows);
          if (anyPacked)
            tileLayout.blockedRows = lb.gatherRowBlocks(
                tokens, slots[0], tileLayout.rowBlock, tileLayout.activeBlocks);
          // The body is cloned where this loop body is being built.
          rewriter.setInsertionPoint(tb.getInsertionBlock(),
                                     tb.getInsertionPoint());
          Value out = cloneExpertBodyOn(rewriter, expert, rows, slices,
                                        scaleSlices, &tileLayout);
          return lb.scatterAddRows(acc, ids, weights, out);
        };

        rewriter.setInsertionPoint(eb.getInsertionBlock(),
                                   eb.getInsertionPoint());
        SmallVector<Value> slices =
            sliceExpertWeights(rewriter, expert, e, expert.getWeights());
        scaleSlices =
            sliceExpertScales(rewriter, expert, e, expert.getScales());
        // With packed weights (whose threads split the panels of one tile,
        // not the tiles), a rest of more than 8 rows takes one more
        // full-size tile, of which the contractions compute only the blocks
        // that hold rows: all rows of an expert share one pass over its
        // weights (a fine-grained expert's 24 rows read them 3 times in
        // 8-row tiles).
        auto allTiles = [&](OpBuilder &fb, Location floc, ValueRange weights,
                            Value acc) -> Value {
          return emitRowTiles(fb, floc, count, tile, staticRows,
                              /*fullTileRest=*/anyPacked, acc,
                              [&](OpBuilder &tb, Location tloc, Value r0,
                                  int64_t rows, Value sum) {
                                return emitTile(tb, tloc, r0, rows, sum,
                                                weights);
                              });
        };
        SmallVector<Value> results;
        if (anyAliased) {
          Value worth = arith::CmpIOp::create(
              eb, arith::CmpIPredicate::uge, count, eb.indexConst(kPadMinRows));
          auto ifOp = scf::IfOp::create(
              eb, worth,
              [&](OpBuilder &pb, Location ploc) {
                SmallVector<Value> padded, views;
                unsigned next = 1;
                for (auto [slice, bad] : llvm::zip(slices, aliased)) {
                  if (!bad) {
                    padded.push_back(slice);
                    continue;
                  }
                  auto type = cast<RankedTensorType>(slice.getType());
                  Value view = tensor::ExtractSliceOp::create(
                      pb, ploc, type, expertArgs[next++], zeros2,
                      getAsIndexOpFoldResult(pb.getContext(), type.getShape()),
                      ones2);
                  padded.push_back(linalg::CopyOp::create(pb, ploc, slice, view)
                                       .getResult(0));
                  views.push_back(padded.back());
                }
                SmallVector<Value> yielded = {
                    allTiles(pb, ploc, padded, expertArgs[0])};
                // The copies go back into their buffers (in place) so that
                // the loop carries them.
                for (auto [view, buffer] :
                     llvm::zip(views, expertArgs.drop_front())) {
                  auto type = cast<RankedTensorType>(view.getType());
                  yielded.push_back(tensor::InsertSliceOp::create(
                      pb, ploc, view, buffer, zeros2,
                      getAsIndexOpFoldResult(pb.getContext(), type.getShape()),
                      ones2));
                }
                scf::YieldOp::create(pb, ploc, yielded);
              },
              [&](OpBuilder &pb, Location ploc) {
                SmallVector<Value> yielded = {
                    allTiles(pb, ploc, slices, expertArgs[0])};
                llvm::append_range(yielded, expertArgs.drop_front());
                scf::YieldOp::create(pb, ploc, yielded);
              });
          llvm::append_range(results, ifOp.getResults());
        } else {
          results.push_back(allTiles(eb, eb.getLoc(), slices, expertArgs[0]));
        }
        scf::YieldOp::create(eb, results);
      });
  // A tile's temporaries must stay its own: CSE would merge a tensor.empty
  // in the tile loop with an equal one outside it (one buffer for every
  // tile, a race once the tiles run in parallel). alloc_tensor is not
  // merged.
  SmallVector<tensor::EmptyOp> empties;
  experts.walk([&](scf::ForOp loop) {
    if (loop->hasAttr(kIndependentTilesAttrName))
      loop.walk([&](tensor::EmptyOp empty) { empties.push_back(empty); });
  });
  for (tensor::EmptyOp empty : empties) {
    rewriter.setInsertionPoint(empty);
    rewriter.replaceOpWithNewOp<bufferization::AllocTensorOp>(
        empty, empty.getType(), empty.getDynamicSizes());
  }
  Value result = b.convertElements(experts.getResult(0),
                                   getElementTypeOrSelf(init.getType()));
  rewriter.replaceOp(combine, result);
  rewriter.eraseOp(expert);
  rewriter.eraseOp(dispatch);
  return success();
}

namespace {
struct FuseSparseLayerPattern : OpRewritePattern<CombineOp> {
  FuseSparseLayerPattern(MLIRContext *ctx, int64_t tileRows, int64_t rowBlock)
      : OpRewritePattern(ctx, /*benefit=*/2), tileRows(tileRows),
        rowBlock(rowBlock) {}

  LogicalResult matchAndRewrite(CombineOp combine,
                                PatternRewriter &rewriter) const override {
    return fuseSparseLayer(rewriter, combine, tileRows, rowBlock);
  }

  int64_t tileRows, rowBlock;
};

struct ConvertMoEToFusedLinalgPass
    : moe::impl::ConvertMoEToFusedLinalgBase<ConvertMoEToFusedLinalgPass> {
  using Base::Base;

  void runOnOperation() override {
    if (tileRows < 1 || tileRows > 4096) {
      getOperation()->emitError("convert-moe-to-fused-linalg: tile-rows must "
                                "be in [1, 4096], got ")
          << static_cast<int64_t>(tileRows);
      return signalPassFailure();
    }
    if (rowBlock < 1 || rowBlock > 64) {
      getOperation()->emitError("convert-moe-to-fused-linalg: row-block must "
                                "be in [1, 64], got ")
          << static_cast<int64_t>(rowBlock);
      return signalPassFailure();
    }
    SmallVector<CombineOp> combines;
    getOperation()->walk([&](CombineOp op) { combines.push_back(op); });
    IRRewriter rewriter(&getContext());
    for (CombineOp combine : combines)
      (void)fuseSparseLayer(rewriter, combine, tileRows, rowBlock);

    // Whatever was not fused goes the reference way.
    if (failed(lowerMoEToLinalg(getOperation())))
      signalPassFailure();
  }
};
} // namespace

void mlir::moe::populateFusedMoEPatterns(RewritePatternSet &patterns,
                                         int64_t tileRows, int64_t rowBlock) {
  patterns.add<FuseSparseLayerPattern>(patterns.getContext(), tileRows,
                                       rowBlock);
}
