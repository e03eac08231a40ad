//===- WeightStorage.cpp - Narrow storage of expert weights -----*- C++ -*-===//
//
// This file implements the element conversions of moe-pack-expert-weights:
// bf16 rounding and int8 quantization with one scale per output column,
// written as linalg ops so that the pack function compiles like the layer.
//
//===----------------------------------------------------------------------===//

#include "WeightStorage.h"

#include "moe/Dialect/MoE/Utils/SymmetricCodes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
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

Value mlir::moe::detail::narrowScales(RewriterBase &rewriter, Location loc,
                                      Value scales, Type type) {
  auto scalesType = cast<RankedTensorType>(scales.getType());
  if (!type || type == scalesType.getElementType())
    return scales;
  auto resultType = scalesType.clone(type);
  Value init =
      tensor::EmptyOp::create(rewriter, loc, resultType.getShape(), type);
  SmallVector<AffineMap> maps(
      2, rewriter.getMultiDimIdentityMap(scalesType.getRank()));
  SmallVector<utils::IteratorType> iterators(scalesType.getRank(),
                                             utils::IteratorType::parallel);
  // arith.truncf rounds to nearest even (LLVM's fptrunc; vcvtps2ph with
  // the default rounding on x86).
  return linalg::GenericOp::create(
             rewriter, loc, resultType, scales, init, maps, iterators,
             [&](OpBuilder &b, Location l, ValueRange args) {
               linalg::YieldOp::create(
                   b, l,
                   ValueRange{arith::TruncFOp::create(b, l, type, args[0])});
             })
      .getResult(0);
}

/// Symmetric quantization of `weight` ([..., R, N], f32) along its
/// dimension R (moe::quantizeSymmetric).
static moe::detail::QuantizedWeight quantizeAlong(RewriterBase &rewriter,
                                                  Location loc, Value weight,
                                                  int64_t lowest,
                                                  int64_t largest) {
  unsigned rank = cast<RankedTensorType>(weight.getType()).getRank();
  moe::SymmetricCodes codes =
      moe::quantizeSymmetric(rewriter, loc, weight, rank - 2, lowest, largest);
  return {codes.values, codes.scales};
}

/// The i8 quantization's bound: symmetric, so -128 is never used and
/// negating a quantized weight stays exact.
static constexpr int64_t kI8Bound = 127;

moe::detail::QuantizedWeight
mlir::moe::detail::quantizeToI8(RewriterBase &rewriter, Location loc,
                                Value weight) {
  return quantizeAlong(rewriter, loc, weight, -kI8Bound, kI8Bound);
}

/// The 4-bit quantization's range: two's complement nibbles, and the
/// largest magnitude of a group maps to 7 so that rounding stays in range.
static constexpr int64_t kI4Max = 7, kI4Min = -8;

moe::detail::QuantizedWeight
mlir::moe::detail::quantizeToI4(RewriterBase &rewriter, Location loc,
                                Value weight, int64_t panel, int64_t group,
                                bool forIntegerDot) {
  auto type = cast<RankedTensorType>(weight.getType());
  Type f32 = rewriter.getF32Type(), i8 = rewriter.getI8Type();
  int64_t experts = type.getDimSize(0), depth = type.getDimSize(1),
          columns = type.getDimSize(2);
  int64_t panels = llvm::divideCeil(columns, panel), half = panel / 2;
  int64_t width = panels * panel, groups = depth / group;
  auto f32Const = [&](OpBuilder &b, Location l, double v) -> Value {
    return arith::ConstantOp::create(b, l, b.getF32FloatAttr(v));
  };
  auto parallel = [](unsigned n) {
    return SmallVector<utils::IteratorType>(n, utils::IteratorType::parallel);
  };

  // Whole panels of columns (zeros past N), rows split into groups:
  // [E, K / G, G, N'].
  Value padded = weight;
  if (width != columns) {
    OpFoldResult zero = rewriter.getIndexAttr(0);
    padded = tensor::PadOp::create(
        rewriter, loc, RankedTensorType::get({experts, depth, width}, f32),
        weight, ArrayRef<OpFoldResult>{zero, zero, zero},
        ArrayRef<OpFoldResult>{zero, zero,
                               rewriter.getIndexAttr(width - columns)},
        f32Const(rewriter, loc, 0.0));
  }
  Value grouped = tensor::ExpandShapeOp::create(
      rewriter, loc,
      RankedTensorType::get({experts, groups, group, width}, f32), padded,
      SmallVector<ReassociationIndices>{{0}, {1, 2}, {3}});

  // Scales [E, K / G, N'] and values [E, K / G, G, N'] in [-8, 7].
  auto [values, scales] = quantizeAlong(rewriter, loc, grouped, kI4Min, kI4Max);

  // Two values per byte: [E, K, N' / P, 2, P / 2] -> low and high halves of
  // each panel row -> bytes [E, K, N' / P, P / 2], then panels outermost.
  Value halves = tensor::ExpandShapeOp::create(
      rewriter, loc,
      RankedTensorType::get({experts, depth, panels, 2, half}, i8),
      tensor::CollapseShapeOp::create(
          rewriter, loc, values,
          SmallVector<ReassociationIndices>{{0}, {1, 2}, {3}}),
      SmallVector<ReassociationIndices>{{0}, {1}, {2, 3, 4}});
  auto halfType = RankedTensorType::get({experts, depth, panels, half}, i8);
  auto halfOf = [&](int64_t which) -> Value {
    OpFoldResult zero = rewriter.getIndexAttr(0),
                 one = rewriter.getIndexAttr(1);
    return tensor::ExtractSliceOp::create(
        rewriter, loc, halfType, halves,
        ArrayRef<OpFoldResult>{zero, zero, zero, rewriter.getIndexAttr(which),
                               zero},
        ArrayRef<OpFoldResult>{
            rewriter.getIndexAttr(experts), rewriter.getIndexAttr(depth),
            rewriter.getIndexAttr(panels), one, rewriter.getIndexAttr(half)},
        ArrayRef<OpFoldResult>{one, one, one, one, one});
  };
  AffineMap identity4 = rewriter.getMultiDimIdentityMap(4);
  Value bytes =
      linalg::GenericOp::create(
          rewriter, loc, halfType, ValueRange{halfOf(0), halfOf(1)},
          ValueRange{
              tensor::EmptyOp::create(rewriter, loc, halfType.getShape(), i8)},
          ArrayRef<AffineMap>{identity4, identity4, identity4}, parallel(4),
          [&](OpBuilder &b, Location l, ValueRange args) {
            auto c8 = [&](int64_t v) -> Value {
              return arith::ConstantIntOp::create(b, l, b.getI8Type(), v);
            };
            Value low = arith::AndIOp::create(b, l, args[0], c8(0x0F));
            Value high = arith::ShLIOp::create(b, l, args[1], c8(4));
            Value byte = arith::OrIOp::create(b, l, low, high);
            // v + 8 in each nibble: its sign bit flipped.
            if (forIntegerDot)
              byte = arith::XOrIOp::create(b, l, byte, c8(0x88 - 256));
            linalg::YieldOp::create(b, l, byte);
          })
          .getResult(0);
  if (forIntegerDot) {
    // [E, K / 4, 4, N' / P, P / 2] -> [E, K / 4, N' / P, P / 2, 4]: the
    // four rows' byte c side by side, then back to [E, K, N' / P, P / 2].
    auto quadType =
        RankedTensorType::get({experts, depth / 4, 4, panels, half}, i8);
    Value quads = tensor::ExpandShapeOp::create(
        rewriter, loc, quadType, bytes,
        SmallVector<ReassociationIndices>{{0}, {1, 2}, {3}, {4}});
    Value interleaved =
        linalg::TransposeOp::create(
            rewriter, loc, quads,
            tensor::EmptyOp::create(
                rewriter, loc,
                ArrayRef<int64_t>{experts, depth / 4, panels, half, 4}, i8),
            ArrayRef<int64_t>{0, 1, 3, 4, 2})
            .getResult()[0];
    // [E, K / 4, N' / P, 2P] viewed as [E, K / 4, N' / P, 4, P / 2].
    Value flat = tensor::CollapseShapeOp::create(
        rewriter, loc, interleaved,
        SmallVector<ReassociationIndices>{{0}, {1}, {2}, {3, 4}});
    Value rows = tensor::ExpandShapeOp::create(
        rewriter, loc, quadType.clone({experts, depth / 4, panels, 4, half}),
        flat, SmallVector<ReassociationIndices>{{0}, {1}, {2}, {3, 4}});
    // [E, K / 4, 4, N' / P, P / 2] order again, then [E, K, N' / P, P / 2].
    Value ordered =
        linalg::TransposeOp::create(
            rewriter, loc, rows,
            tensor::EmptyOp::create(rewriter, loc, quadType.getShape(), i8),
            ArrayRef<int64_t>{0, 1, 3, 2, 4})
            .getResult()[0];
    bytes = tensor::CollapseShapeOp::create(
        rewriter, loc, ordered,
        SmallVector<ReassociationIndices>{{0}, {1, 2}, {3}, {4}});
  }
  auto packedType = RankedTensorType::get({experts, panels, depth, half}, i8);
  Value packed =
      linalg::TransposeOp::create(
          rewriter, loc, bytes,
          tensor::EmptyOp::create(rewriter, loc, packedType.getShape(), i8),
          ArrayRef<int64_t>{0, 2, 1, 3})
          .getResult()[0];

  // Scales [E, K / G, N'] -> [E, N' / P, K / G, P].
  Value scalePanels = tensor::ExpandShapeOp::create(
      rewriter, loc,
      RankedTensorType::get({experts, groups, panels, panel}, f32), scales,
      SmallVector<ReassociationIndices>{{0}, {1}, {2, 3}});
  auto packedScaleType =
      RankedTensorType::get({experts, panels, groups, panel}, f32);
  Value packedScales = linalg::TransposeOp::create(
                           rewriter, loc, scalePanels,
                           tensor::EmptyOp::create(
                               rewriter, loc, packedScaleType.getShape(), f32),
                           ArrayRef<int64_t>{0, 2, 1, 3})
                           .getResult()[0];
  return {packed, packedScales};
}
