//===- TensorCoreMatmuls.cpp - moe-gpu-tensor-core-matmuls ------*- C++ -*-===//
//
// This file rewrites the f16 and bf16 contractions of GPU blocks (an expert
// tile's GEMMs) as warp-level 16x8x16 tiles: vector.contract (which the host
// can run, for the emulation), or per-lane fragments and nvgpu.mma.sync (tensor
// cores). Upstream's convert-vector-to-gpu{use-nvgpu} would do the second
// step, but it takes every op in the slices of the contractions (here, the
// index arithmetic of the mapping and the expert body) and fails on them.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/LoopsToGPU/LoopsToGPU.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace mlir::moe {
#define GEN_PASS_DEF_GPUTENSORCOREMATMULS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

// The shape of one mma.sync for f16 or bf16 inputs and f32 accumulators.
constexpr int64_t kTileM = 16, kTileN = 8, kTileK = 16;

/// Whether `matmul` is a static f16 or bf16 -> f32 contraction on buffers in
/// a loop (a block's work) whose sizes the mma shape divides.
static bool isTensorCoreMatmul(linalg::MatmulOp matmul) {
  if (!matmul.hasPureBufferSemantics())
    return false;
  if (!matmul->getParentOfType<scf::ParallelOp>() &&
      !matmul->getParentOfType<scf::ForallOp>())
    return false;
  // Only the default (row-major A x B) indexing.
  if (!matmul.getIndexingMaps().empty() &&
      matmul.getIndexingMapsArray() !=
          matmul.getDefaultIndexingMaps(matmul.getContext()))
    return false;
  auto a = dyn_cast<MemRefType>(matmul.getDpsInputs()[0].getType());
  auto b = dyn_cast<MemRefType>(matmul.getDpsInputs()[1].getType());
  auto c = dyn_cast<MemRefType>(matmul.getDpsInits()[0].getType());
  if (!a || !b || !c || !a.hasStaticShape() || !b.hasStaticShape() ||
      !c.hasStaticShape())
    return false;
  Type input = a.getElementType();
  if (!(input.isF16() || input.isBF16()) || b.getElementType() != input ||
      !c.getElementType().isF32())
    return false;
  for (MemRefType type : {a, b, c}) {
    int64_t offset;
    SmallVector<int64_t> strides;
    if (failed(type.getStridesAndOffset(strides, offset)) ||
        strides.back() != 1)
      return false;
  }
  int64_t m = c.getDimSize(0), n = c.getDimSize(1), k = a.getDimSize(1);
  return m % kTileM == 0 && n % kTileN == 0 && k % kTileK == 0;
}

/// One mma.m16n8k16 on a lane's fragments (A vector<4x2>, B vector<2x2> of
/// f16 or bf16, C vector<2x2xf32>). nvgpu.mma.sync for f16; NVVM's mma
/// directly for bf16, which the NVGPU lowering does not type yet.
static Value emitMma(OpBuilder &b, Location loc, Value fragA, Value fragB,
                     Value acc) {
  Type input = cast<VectorType>(fragA.getType()).getElementType();
  if (input.isF16())
    return nvgpu::MmaSyncOp::create(b, loc, fragA, fragB, acc,
                                    ArrayRef<int64_t>{kTileM, kTileN, kTileK});
  // Registers: pairs of bf16 as i32 for A and B, four f32 for C.
  Type i32 = b.getI32Type(), f32 = b.getF32Type();
  auto packed = VectorType::get({1}, i32);
  auto registers = [&](Value fragment, int64_t count) {
    SmallVector<Value> values;
    for (int64_t r = 0; r < count; ++r) {
      Value pair =
          vector::ExtractOp::create(b, loc, fragment, ArrayRef<int64_t>{r});
      Value bits = vector::BitCastOp::create(b, loc, packed, pair);
      values.push_back(
          vector::ExtractOp::create(b, loc, bits, ArrayRef<int64_t>{0}));
    }
    return values;
  };
  SmallVector<Value> accumulators;
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 2; ++j)
      accumulators.push_back(
          vector::ExtractOp::create(b, loc, acc, ArrayRef<int64_t>{i, j}));
  auto resultType =
      LLVM::LLVMStructType::getLiteral(b.getContext(), {f32, f32, f32, f32});
  Value result = NVVM::MmaOp::create(
      b, loc, resultType, registers(fragA, 4), registers(fragB, 2),
      accumulators, ArrayRef<int64_t>{kTileM, kTileN, kTileK},
      /*b1Op=*/std::nullopt, /*intOverflow=*/std::nullopt,
      std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::bf16, NVVM::MMATypes::bf16},
      std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                     NVVM::MMALayout::col});
  Value out = acc;
  for (int64_t index = 0; index < 4; ++index) {
    Value value =
        LLVM::ExtractValueOp::create(b, loc, result, ArrayRef<int64_t>{index});
    out = vector::InsertOp::create(b, loc, value, out,
                                   ArrayRef<int64_t>{index / 2, index % 2});
  }
  return out;
}

/// The m16n8k16 tile at (m0, n0) as each lane of a warp computes it:
/// fragments loaded in the PTX ISA's layout for mma.m16n8k16 with 16-bit
/// inputs (lane = 4 * group + thread-in-group), nvgpu.mma.sync over K.
static void emitMmaSyncTile(OpBuilder &b, Location loc, Value a, Value bm,
                            Value c, Value m0, Value n0, int64_t k) {
  Type input = cast<MemRefType>(a.getType()).getElementType();
  auto index = [&](int64_t value) -> Value {
    return arith::ConstantIndexOp::create(b, loc, value);
  };
  auto add = [&](Value x, Value y) -> Value {
    return arith::AddIOp::create(b, loc, x, y);
  };
  Type f32 = b.getF32Type();
  Value lane = gpu::LaneIdOp::create(b, loc, /*upper_bound=*/nullptr);
  Value group = arith::DivUIOp::create(b, loc, lane, index(4));
  Value pair = arith::MulIOp::create(
      b, loc, arith::RemUIOp::create(b, loc, lane, index(4)), index(2));
  Value row0 = add(m0, group), row1 = add(row0, index(8));
  Value col = add(n0, pair);
  // c0 c1: row group; c2 c3: row group + 8; columns 2 * tig + (0, 1).
  auto cType = VectorType::get({2, 2}, f32);
  auto rowType = VectorType::get({2}, f32);
  Value acc = arith::ConstantOp::create(
      b, loc, cType, DenseElementsAttr::get(cType, b.getF32FloatAttr(0.0f)));
  Value rows[2] = {row0, row1};
  for (int64_t i = 0; i < 2; ++i) {
    Value part =
        vector::LoadOp::create(b, loc, rowType, c, ValueRange{rows[i], col});
    acc = vector::InsertOp::create(b, loc, part, acc, ArrayRef<int64_t>{i});
  }
  auto aType = VectorType::get({4, 2}, input);
  auto bType = VectorType::get({2, 2}, input);
  auto halfType = VectorType::get({2}, input);
  auto loop = scf::ForOp::create(
      b, loc, index(0), index(k), index(kTileK), ValueRange{acc},
      [&](OpBuilder &fb, Location floc, Value k0, ValueRange sum) {
        auto fadd = [&](Value x, int64_t y) -> Value {
          return arith::AddIOp::create(
              fb, floc, x, arith::ConstantIndexOp::create(fb, floc, y));
        };
        Value kPair = arith::AddIOp::create(fb, floc, k0, pair);
        // a0 a1 | a2 a3 | a4 a5 | a6 a7: rows group, group + 8, then the
        // same rows 8 columns on; columns 2 * tig + (0, 1).
        Value fragA = arith::ConstantOp::create(
            fb, floc, aType,
            DenseElementsAttr::get(aType, fb.getFloatAttr(input, 0.0)));
        for (int64_t r = 0; r < 4; ++r) {
          Value aCol = r < 2 ? kPair : fadd(kPair, 8);
          Value part = vector::LoadOp::create(fb, floc, halfType, a,
                                              ValueRange{rows[r % 2], aCol});
          fragA = vector::InsertOp::create(fb, floc, part, fragA,
                                           ArrayRef<int64_t>{r});
        }
        // b0 b1 | b2 b3: rows (k) 2 * tig + (0, 1) and 8 more, column group.
        Value bCol = arith::AddIOp::create(fb, floc, n0, group);
        SmallVector<Value> elements;
        for (int64_t offset : {0, 1, 8, 9})
          elements.push_back(memref::LoadOp::create(
              fb, floc, bm, ValueRange{fadd(kPair, offset), bCol}));
        Value fragB = vector::FromElementsOp::create(fb, floc, bType, elements);
        scf::YieldOp::create(fb, floc, emitMma(fb, floc, fragA, fragB, sum[0]));
      });
  for (int64_t i = 0; i < 2; ++i) {
    Value part = vector::ExtractOp::create(b, loc, loop.getResult(0),
                                           ArrayRef<int64_t>{i});
    vector::StoreOp::create(b, loc, part, c, ValueRange{rows[i], col});
  }
}

/// scf.parallel over the 16 x 8 tiles of C; each tile accumulates
/// vector.contract over 16-wide slices of K (or, with `mmaSync`, runs
/// nvgpu.mma.sync per lane). One warp computes a tile.
static void rewrite(linalg::MatmulOp matmul, bool mmaSync) {
  OpBuilder b(matmul);
  Location loc = matmul.getLoc();
  Value a = matmul.getDpsInputs()[0], bm = matmul.getDpsInputs()[1];
  Value c = matmul.getDpsInits()[0];
  auto cType = cast<MemRefType>(c.getType());
  int64_t m = cType.getDimSize(0), n = cType.getDimSize(1);
  int64_t k = cast<MemRefType>(a.getType()).getDimSize(1);
  auto index = [&](int64_t value) -> Value {
    return arith::ConstantIndexOp::create(b, loc, value);
  };
  Type input = cast<MemRefType>(a.getType()).getElementType();
  Type f32 = b.getF32Type();
  auto aType = VectorType::get({kTileM, kTileK}, input);
  auto bType = VectorType::get({kTileK, kTileN}, input);
  auto cVecType = VectorType::get({kTileM, kTileN}, f32);
  MLIRContext *ctx = b.getContext();
  AffineExpr dm, dn, dk;
  bindDims(ctx, dm, dn, dk);
  auto maps = b.getAffineMapArrayAttr({AffineMap::get(3, 0, {dm, dk}, ctx),
                                       AffineMap::get(3, 0, {dk, dn}, ctx),
                                       AffineMap::get(3, 0, {dm, dn}, ctx)});
  auto iterators = b.getArrayAttr(
      {vector::IteratorTypeAttr::get(ctx, vector::IteratorType::parallel),
       vector::IteratorTypeAttr::get(ctx, vector::IteratorType::parallel),
       vector::IteratorTypeAttr::get(ctx, vector::IteratorType::reduction)});
  SmallVector<bool> inBounds = {true, true};

  // The tile offsets are the loop's induction variables themselves (no
  // index arithmetic), which convert-vector-to-gpu needs to build the
  // per-lane fragment loads.
  scf::ParallelOp::create(
      b, loc, ValueRange{index(0), index(0)}, ValueRange{index(m), index(n)},
      ValueRange{index(kTileM), index(kTileN)},
      [&](OpBuilder &pb, Location ploc, ValueRange ivs) {
        Value m0 = ivs[0], n0 = ivs[1];
        if (mmaSync) {
          emitMmaSyncTile(pb, ploc, a, bm, c, m0, n0, k);
          return;
        }
        Value zero32 =
            arith::ConstantOp::create(pb, ploc, f32, pb.getF32FloatAttr(0.0f));
        Value zero16 = arith::ConstantOp::create(pb, ploc, input,
                                                 pb.getFloatAttr(input, 0.0));
        Value acc = vector::TransferReadOp::create(
            pb, ploc, cVecType, c, ValueRange{m0, n0}, zero32, inBounds);
        auto loop = scf::ForOp::create(
            pb, ploc, arith::ConstantIndexOp::create(pb, ploc, 0),
            arith::ConstantIndexOp::create(pb, ploc, k),
            arith::ConstantIndexOp::create(pb, ploc, kTileK), ValueRange{acc},
            [&](OpBuilder &fb, Location floc, Value k0, ValueRange sum) {
              Value lhs = vector::TransferReadOp::create(
                  fb, floc, aType, a, ValueRange{m0, k0}, zero16, inBounds);
              Value rhs = vector::TransferReadOp::create(
                  fb, floc, bType, bm, ValueRange{k0, n0}, zero16, inBounds);
              // In f32: the host's vector lowering (the emulation) has no
              // mixed-precision contraction; the products are exact anyway.
              lhs = arith::ExtFOp::create(
                  fb, floc, VectorType::get({kTileM, kTileK}, f32), lhs);
              rhs = arith::ExtFOp::create(
                  fb, floc, VectorType::get({kTileK, kTileN}, f32), rhs);
              Value next = vector::ContractionOp::create(
                  fb, floc, lhs, rhs, sum[0], maps, iterators);
              scf::YieldOp::create(fb, floc, next);
            });
        vector::TransferWriteOp::create(pb, ploc, loop.getResult(0), c,
                                        ValueRange{m0, n0}, inBounds);
      });
  matmul.erase();
}

struct GPUTensorCoreMatmulsPass
    : moe::impl::GPUTensorCoreMatmulsBase<GPUTensorCoreMatmulsPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<linalg::MatmulOp> matmuls;
    getOperation().walk([&](linalg::MatmulOp matmul) {
      if (isTensorCoreMatmul(matmul))
        matmuls.push_back(matmul);
    });
    for (linalg::MatmulOp matmul : matmuls)
      rewrite(matmul, mmaSync);
  }
};

} // namespace
