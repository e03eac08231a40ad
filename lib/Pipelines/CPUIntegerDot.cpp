//===- CPUIntegerDot.cpp - Int8 rows times 4-bit codes ----------*- C++ -*-===//
//
// This file lowers moe.nibble_dot (one group of a 4-bit panel times a
// tile's int8 rows, summed in i32) to vector code with the target's integer
// dot product: each four-row run of codes is one vector load, unpacked to
// two vectors of unsigned bytes (low and high nibbles: two column halves)
// by an AND and a shift, and each row's four int8 values are broadcast to
// every i32 lane; vpdpbusd then adds 64 products per instruction. The
// accumulators of a row block stay in registers across the group. It runs
// on buffers (moe-cpu-codegen{stage=lower}): the intrinsics are calls that
// bufferization would not move past.
//
//===----------------------------------------------------------------------===//

#include "CPUCodegenParts.h"

#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

using namespace mlir;
using namespace mlir::moe;

/// How far ahead of the quad being read the codes are prefetched: 32 quads
/// (4 KiB of a 64-column panel, a group of 128 rows). Without it the decode
/// loads waited on memory (31 % of the samples at the first use of a load)
/// between groups, whose epilogue interrupts the stream: T = 8 decode with
/// weights 4x the LLC 22.6 -> 20.1 ms (best of 8, A/B in one process; 16
/// and 64 quads no better).
static constexpr int64_t kPrefetchQuads = 32;

namespace {
/// How a nibble dot is emitted: the instructions, i32 lanes per vector and
/// column vectors per pass over the group.
struct DotShape {
  CPUIntegerDot dot;
  int64_t lanes, perPass;
};
} // namespace

/// The widest shape `dot` supports for C columns per half and M0 rows:
/// targets' instructions need their full register (16 or 8 lanes), else
/// the generic arithmetic takes what divides C. The accumulators of a pass
/// (M0 x 2 x perPass) stay within what the registers hold.
static DotShape chooseShape(CPUIntegerDot dot, int64_t half, int64_t rows) {
  int64_t native = dot == CPUIntegerDot::Madd256   ? 8
                   : dot == CPUIntegerDot::Generic ? 8
                                                   : 16;
  int64_t registers = native == 16 ? 24 : 12;
  if (half % native != 0)
    dot = CPUIntegerDot::Generic;
  int64_t lanes = native;
  while (half % lanes != 0)
    lanes /= 2;
  int64_t vectors = half / lanes;
  int64_t perPass = std::clamp<int64_t>(registers / (2 * rows), 1, vectors);
  while (vectors % perPass != 0)
    --perPass;
  return {dot, lanes, perPass};
}

static Value callIntrinsic(OpBuilder &b, Location loc, Type result,
                           StringRef name, ValueRange args) {
  return LLVM::CallIntrinsicOp::create(b, loc, result, b.getStringAttr(name),
                                       args)
      .getResult(0);
}

/// `acc` plus, in each i32 lane, the four products of `codes` (unsigned
/// bytes) and `rows` (signed bytes) of that lane.
static Value dotStep(OpBuilder &b, Location loc, CPUIntegerDot dot, Value acc,
                     Value codes, Value rows) {
  auto accType = cast<VectorType>(acc.getType());
  int64_t lanes = accType.getNumElements();
  auto pairType = VectorType::get({2 * lanes}, b.getI16Type());
  auto ones = [&]() -> Value {
    return arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(pairType, b.getI16IntegerAttr(1)));
  };
  switch (dot) {
  case CPUIntegerDot::Vnni512:
    return callIntrinsic(b, loc, accType, "llvm.x86.avx512.vpdpbusd.512",
                         {acc, codes, rows});
  case CPUIntegerDot::Madd512:
  case CPUIntegerDot::Madd256: {
    // u * a pairs in i16 (at most 2 x 15 x 127: no saturation), then the
    // pairs of pairs in i32.
    bool wide = dot == CPUIntegerDot::Madd512;
    Value pairs = callIntrinsic(b, loc, pairType,
                                wide ? "llvm.x86.avx512.pmaddubs.w.512"
                                     : "llvm.x86.avx2.pmadd.ub.sw",
                                {codes, rows});
    Value quads = callIntrinsic(b, loc, accType,
                                wide ? "llvm.x86.avx512.pmaddw.d.512"
                                     : "llvm.x86.avx2.pmadd.wd",
                                {pairs, ones()});
    return arith::AddIOp::create(b, loc, acc, quads);
  }
  case CPUIntegerDot::Generic: {
    auto byLane = VectorType::get({lanes, 4}, b.getI8Type());
    auto wideType = VectorType::get({lanes, 4}, b.getI32Type());
    Value u = arith::ExtUIOp::create(
        b, loc, wideType, vector::ShapeCastOp::create(b, loc, byLane, codes));
    Value a = arith::ExtSIOp::create(
        b, loc, wideType, vector::ShapeCastOp::create(b, loc, byLane, rows));
    Value products = arith::MulIOp::create(b, loc, u, a);
    return vector::MultiDimReductionOp::create(b, loc, products, acc,
                                               ArrayRef<bool>{false, true},
                                               vector::CombiningKind::ADD);
  }
  }
  llvm_unreachable("unknown integer dot product");
}

namespace {
/// The ops around a moe.nibble_dot that the kernel takes over: the fill
/// that clears its sums and the epilogue that adds them to the result.
struct Epilogue {
  linalg::FillOp fill;
  linalg::GenericOp add;
};
} // namespace

/// The fill before `dot` and the epilogue after it (reading its sums
/// through a collapse_shape) in its block, with nothing but views between
/// the dot and the epilogue; nulls where the IR is not of that shape.
static Epilogue findEpilogue(linalg::GenericOp dot) {
  Value sums = dot.getDpsInits()[0];
  Epilogue found;
  for (Operation *user : sums.getUsers()) {
    if (user == dot || isa<memref::DeallocOp>(user))
      continue;
    if (auto fill = dyn_cast<linalg::FillOp>(user)) {
      if (fill->getBlock() == dot->getBlock() && fill->isBeforeInBlock(dot) &&
          matchPattern(fill.getInputs()[0], m_Zero()))
        found.fill = fill;
      continue;
    }
    auto collapse = dyn_cast<memref::CollapseShapeOp>(user);
    if (!collapse || !collapse->hasOneUse())
      return {};
    auto add = dyn_cast<linalg::GenericOp>(*collapse->getUsers().begin());
    if (!add || !add->hasAttr(moe::kNibbleDotEpilogueAttrName) ||
        add->getBlock() != dot->getBlock() || !dot->isBeforeInBlock(add) ||
        add.getDpsInputs().size() != 4 || add.getDpsInputs()[0] != collapse)
      return {};
    found.add = add;
  }
  if (!found.fill || !found.add)
    return {};
  for (Operation *between = dot->getNextNode(); between != found.add;
       between = between->getNextNode())
    if (!isa<ViewLikeOpInterface>(between) && !isPure(between))
      return {};
  return found;
}

LogicalResult moe::detail::lowerNibbleDot(RewriterBase &rewriter,
                                          linalg::GenericOp op,
                                          CPUIntegerDot target) {
  Value rows = op.getDpsInputs()[0], codes = op.getDpsInputs()[1];
  Value out = op.getDpsInits()[0];
  auto rowsType = dyn_cast<MemRefType>(rows.getType());
  auto codesType = dyn_cast<MemRefType>(codes.getType());
  auto outType = dyn_cast<MemRefType>(out.getType());
  if (!rowsType || !codesType || !outType || rowsType.getRank() != 4 ||
      codesType.getRank() != 3 || !codesType.hasStaticShape() ||
      rowsType.isDynamicDim(1) || outType.getRank() != 4)
    return failure();
  // Codes as [G / 4, 4C] and rows as [B, M0, G]: one-dimensional loads.
  SmallVector<ReassociationIndices> codeRuns = {{0}, {1, 2}};
  SmallVector<ReassociationIndices> rowRuns = {{0}, {1}, {2, 3}};
  if (!memref::CollapseShapeOp::isGuaranteedCollapsible(codesType, codeRuns) ||
      !memref::CollapseShapeOp::isGuaranteedCollapsible(rowsType, rowRuns))
    return failure();
  int64_t block = rowsType.getDimSize(1), quads = codesType.getDimSize(0);
  int64_t half = codesType.getDimSize(1);
  DotShape shape = chooseShape(target, half, block);
  Epilogue epilogue = findEpilogue(op);
  int64_t lanes = shape.lanes;
  Location loc = op.getLoc();
  rewriter.setInsertionPoint(op);
  Type i8 = rewriter.getI8Type(), i32 = rewriter.getI32Type();
  auto index = [&](OpBuilder &b, int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  Value codeBytes =
      memref::CollapseShapeOp::create(rewriter, loc, codes, codeRuns);
  Value rowBytes =
      memref::CollapseShapeOp::create(rewriter, loc, rows, rowRuns);
  // The whole panel's codes, when the group is a slice of them: the quads
  // `kPrefetchQuads` on are prefetched (clamped to the panel's last).
  Value panelCodes, groupStart, lastQuad;
  if (auto slice = codes.getDefiningOp<memref::SubViewOp>()) {
    auto panelType = cast<MemRefType>(slice.getSource().getType());
    if (panelType.getRank() == 3 && panelType.hasStaticShape() &&
        memref::CollapseShapeOp::isGuaranteedCollapsible(panelType, codeRuns) &&
        llvm::all_of(ArrayRef(slice.getMixedOffsets()).drop_front(),
                     isZeroInteger)) {
      panelCodes = memref::CollapseShapeOp::create(rewriter, loc,
                                                   slice.getSource(), codeRuns);
      groupStart = getValueOrCreateConstantIndexOp(
          rewriter, loc, slice.getMixedOffsets().front());
      lastQuad = index(rewriter, panelType.getDimSize(0) - 1);
    }
  }
  auto accType = VectorType::get({lanes}, i32);
  auto byteType = VectorType::get({4 * lanes}, i8);
  auto splat = [&](OpBuilder &b, int64_t v) -> Value {
    return arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(byteType, b.getI8IntegerAttr(v)));
  };
  Value blocks = memref::DimOp::create(rewriter, loc, rows, 0);
  scf::ForOp::create(
      rewriter, loc, index(rewriter, 0), blocks, index(rewriter, 1),
      ValueRange{}, [&](OpBuilder &b, Location, Value bi, ValueRange) {
        for (int64_t first = 0; first < half / lanes; first += shape.perPass) {
          // Accumulator (m, v, h) at (m * perPass + v) * 2 + h.
          auto at = [&](OpBuilder &ab, int64_t m, int64_t v, int64_t h) {
            return SmallVector<Value>{bi, index(ab, m), index(ab, h),
                                      index(ab, (first + v) * lanes)};
          };
          SmallVector<Value> accs;
          for (int64_t m = 0; m < block; ++m)
            for (int64_t v = 0; v < shape.perPass; ++v)
              for (int64_t h = 0; h < 2; ++h)
                accs.push_back(epilogue.add
                                   ? arith::ConstantOp::create(
                                         b, loc,
                                         DenseElementsAttr::get(
                                             accType, b.getI32IntegerAttr(0)))
                                         .getResult()
                                   : vector::LoadOp::create(b, loc, accType,
                                                            out, at(b, m, v, h))
                                         .getResult());
          auto inner = scf::ForOp::create(
              b, loc, index(b, 0), index(b, quads), index(b, 1), accs,
              [&](OpBuilder &ib, Location, Value q, ValueRange current) {
                SmallVector<Value> low, high;
                if (panelCodes && first == 0) {
                  Value ahead = arith::MinSIOp::create(
                      ib, loc,
                      arith::AddIOp::create(
                          ib, loc,
                          arith::AddIOp::create(ib, loc, groupStart, q),
                          index(ib, kPrefetchQuads)),
                      lastQuad);
                  for (int64_t byte = 0; byte < 4 * half; byte += 64)
                    memref::PrefetchOp::create(
                        ib, loc, panelCodes, ValueRange{ahead, index(ib, byte)},
                        /*isWrite=*/false, /*localityHint=*/3,
                        /*isDataCache=*/true);
                }
                for (int64_t v = 0; v < shape.perPass; ++v) {
                  Value bytes = vector::LoadOp::create(
                      ib, loc, byteType, codeBytes,
                      ValueRange{q, index(ib, 4 * (first + v) * lanes)});
                  low.push_back(
                      arith::AndIOp::create(ib, loc, bytes, splat(ib, 15)));
                  high.push_back(
                      arith::ShRUIOp::create(ib, loc, bytes, splat(ib, 4)));
                }
                SmallVector<Value> next(current);
                Value quadStart =
                    arith::MulIOp::create(ib, loc, q, index(ib, 4));
                for (int64_t m = 0; m < block; ++m) {
                  // The row's four values of this quad in every i32 lane.
                  Value four = vector::LoadOp::create(
                      ib, loc, VectorType::get({4}, i8), rowBytes,
                      ValueRange{bi, index(ib, m), quadStart});
                  Value word = vector::ExtractOp::create(
                      ib, loc,
                      vector::BitCastOp::create(
                          ib, loc, VectorType::get({1}, i32), four),
                      ArrayRef<int64_t>{0});
                  Value broadcast = vector::BitCastOp::create(
                      ib, loc, byteType,
                      vector::BroadcastOp::create(ib, loc, accType, word));
                  for (int64_t v = 0; v < shape.perPass; ++v)
                    for (int64_t h = 0; h < 2; ++h) {
                      Value &acc = next[(m * shape.perPass + v) * 2 + h];
                      acc = dotStep(ib, loc, shape.dot, acc,
                                    h ? high[v] : low[v], broadcast);
                    }
                }
                scf::YieldOp::create(ib, loc, next);
              });
          for (int64_t m = 0; m < block; ++m) {
            if (!epilogue.add) {
              for (int64_t v = 0; v < shape.perPass; ++v)
                for (int64_t h = 0; h < 2; ++h)
                  vector::StoreOp::create(
                      b, loc, inner.getResult((m * shape.perPass + v) * 2 + h),
                      out, at(b, m, v, h));
              continue;
            }
            // The epilogue on the sums in registers, in its order:
            // out + column scales * (row scale * float(sums - offset)).
            SmallVector<Value> ins(epilogue.add.getDpsInputs());
            Value result = epilogue.add.getDpsInits()[0];
            auto f32Vector = VectorType::get({lanes}, b.getF32Type());
            Value row[] = {bi, index(b, m)};
            Value rowScale = vector::BroadcastOp::create(
                b, loc, f32Vector, memref::LoadOp::create(b, loc, ins[1], row));
            Value offset = vector::BroadcastOp::create(
                b, loc, accType, memref::LoadOp::create(b, loc, ins[2], row));
            for (int64_t v = 0; v < shape.perPass; ++v)
              for (int64_t h = 0; h < 2; ++h) {
                Value col = index(b, h * half + (first + v) * lanes);
                Value exact = arith::SubIOp::create(
                    b, loc, inner.getResult((m * shape.perPass + v) * 2 + h),
                    offset);
                Value rowScaled = arith::MulFOp::create(
                    b, loc, rowScale,
                    arith::SIToFPOp::create(b, loc, f32Vector, exact));
                // Column scales stored as f16 are widened (vcvtph2ps).
                Type scaleType = getElementTypeOrSelf(ins[3].getType());
                Value columnScales = vector::LoadOp::create(
                    b, loc, VectorType::get({lanes}, scaleType), ins[3], col);
                if (!scaleType.isF32())
                  columnScales =
                      arith::ExtFOp::create(b, loc, f32Vector, columnScales);
                Value scaled =
                    arith::MulFOp::create(b, loc, columnScales, rowScaled);
                Value at[] = {bi, index(b, m), col};
                Value sum = arith::AddFOp::create(
                    b, loc,
                    vector::LoadOp::create(b, loc, f32Vector, result, at),
                    scaled);
                vector::StoreOp::create(b, loc, sum, result, at);
              }
          }
        }
        scf::YieldOp::create(b, loc);
      });
  rewriter.eraseOp(op);
  if (epilogue.add) {
    auto collapse = epilogue.add.getDpsInputs()[0].getDefiningOp();
    rewriter.eraseOp(epilogue.add);
    rewriter.eraseOp(collapse);
    rewriter.eraseOp(epilogue.fill);
  }
  return success();
}

void moe::detail::lowerNibbleDots(RewriterBase &rewriter, Operation *root,
                                  CPUIntegerDot dot) {
  SmallVector<linalg::GenericOp> nibbleDots;
  root->walk([&](linalg::GenericOp op) {
    if (op->removeAttr(moe::kNibbleDotAttrName))
      nibbleDots.push_back(op);
  });
  // (One that is not of the expected shape keeps its loops.)
  for (linalg::GenericOp op : nibbleDots)
    (void)lowerNibbleDot(rewriter, op, dot);
  // (An epilogue the kernel did not take stays a loop nest.)
  root->walk([](linalg::GenericOp op) {
    op->removeAttr(moe::kNibbleDotEpilogueAttrName);
  });
}
