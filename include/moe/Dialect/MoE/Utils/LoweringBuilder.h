//===- LoweringBuilder.h - Helpers for the moe lowerings --------*- C++ -*-===//
//
// This file declares a builder with the tensor-level idioms the moe
// lowerings and rewrites repeat: constants, filled tensors, element
// conversions, linalg.generic ops described by their loop dimensions,
// softmax, sigmoid, ranks and f32 contractions.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_UTILS_LOWERINGBUILDER_H
#define MOE_DIALECT_MOE_UTILS_LOWERINGBUILDER_H

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir::moe::detail {

/// The exp of routing scores: f32 `exp(x)` built from IEEE multiplies, adds
/// and integer ops only (Cody-Waite reduction, the Cephes polynomial, an
/// exact power-of-two scaling; within 2 ulp of exp, 0 below -104, inf above
/// 88.8, NaN kept). Unlike math.exp, which becomes the C library's expf on
/// the CPU and libdevice's approximation on NVIDIA GPUs, it rounds the same
/// on every backend and in NumPy (reference.exp), so routing decisions are
/// bit-identical everywhere. Other float types fall back to math.exp.
Value buildRoutingExp(OpBuilder &b, Location loc, Value x);

/// Where each expert's rows are in a grouped layout: [E] tensors.
struct GroupBounds {
  Value starts;
  Value counts;
};

/// An ImplicitLocOpBuilder with tensor helpers for the moe lowerings.
class LoweringBuilder : public ImplicitLocOpBuilder {
public:
  using BodyFn = function_ref<void(OpBuilder &, Location, ValueRange)>;

  LoweringBuilder(Location loc, OpBuilder &builder)
      : ImplicitLocOpBuilder(loc, builder) {}

  Value indexConst(int64_t value);
  Value intConst(Type type, int64_t value);
  Value floatConst(Type type, double value);

  /// Returns dimension `dim` of a ranked tensor, static or not.
  OpFoldResult size(Value tensor, int64_t dim);
  /// Returns dimension `dim` of a ranked tensor as an index value.
  Value sizeValue(Value tensor, int64_t dim);

  /// Returns a `tensor.empty` of the given sizes.
  Value empty(ArrayRef<OpFoldResult> sizes, Type elementType);
  /// Returns a tensor of the given sizes filled with `value`.
  Value filled(ArrayRef<OpFoldResult> sizes, Value value);

  /// Converts a float scalar to `type` (extf, truncf or nothing).
  Value convertFloat(Value scalar, Type type);
  /// Converts every element of a float tensor to `type`.
  Value convertElements(Value tensor, Type type);

  /// Returns the map from `numDims` loop dimensions to the listed ones.
  AffineMap dimsMap(unsigned numDims, ArrayRef<unsigned> dims);

  /// Builds a linalg.generic over `numDims` loops whose operands read the
  /// listed loop dimensions; `reductions` lists the reduction loops.
  ResultRange generic(ValueRange inputs, ArrayRef<SmallVector<unsigned>> inDims,
                      ValueRange outputs,
                      ArrayRef<SmallVector<unsigned>> outDims, unsigned numDims,
                      ArrayRef<unsigned> reductions, BodyFn body);

  /// Accumulates products in f32 over loops (i, j, r), r the reduction:
  /// acc[i, j] += f32(lhs[lhsDims]) * f32(rhs[rhsDims]).
  Value accumulateProducts(Value lhs, ArrayRef<unsigned> lhsDims, Value rhs,
                           ArrayRef<unsigned> rhsDims, Value acc);

  /// The rows of every expert in a grouped layout of `numRows` rows: the
  /// start and count [E] (in the offsets' integer type) from offsets[e] and
  /// offsets[e + 1] when the offsets are monotone within [0, N], as
  /// moe.route makes them. Offsets from elsewhere (function arguments, user
  /// code) are made so: start = max(offsets[0..e]) and end = max(start,
  /// offsets[e+1]), clamped to [0, N], so the experts' ranges are disjoint
  /// and in bounds whatever the offsets hold.
  GroupBounds groupBounds(Value offsets, Value numRows);
  /// Expert `expert`'s (start, count) of `bounds`, as indices.
  std::pair<Value, Value> groupRows(const GroupBounds &bounds, Value expert);

  /// Gathers rows of `tokens` [T, D] through `ids` (any rank, i32 or i64):
  /// result[s..., d] = tokens[ids[s...], d], a zero row where the id is not
  /// in [0, T) (an empty slot). Keeps the tokens' element type. No read
  /// is out of bounds: an invalid id reads row 0 (and selects zero) when T is
  /// statically positive, and reads nothing otherwise; `guardReads` = false
  /// keeps the unconditional form for callers that skip T = 0 themselves.
  Value gatherRows(Value tokens, Value ids, bool guardReads = true);

  /// Gathers the rows of `ids` [M] (M a multiple of `block`) in blocks of
  /// `block` rows, each stored transposed: result[b, d, r] =
  /// tokens[ids[b * block + r], d], [M / block, D, block] (the left-hand
  /// layout of the contractions by packed weights). As gatherRows with
  /// `guardReads` = false. With `activeBlocks` (an index), only the first
  /// that many blocks are written; the others are left undefined for
  /// consumers that read only those blocks.
  Value gatherRowBlocks(Value tokens, Value ids, int64_t block,
                        Value activeBlocks = Value());

  /// Adds `gates[i] * rows[i]` to row `ids[i]` of the f32 accumulator `acc`
  /// [T, D] for every i in order (ids outside [0, T) are skipped); `ids`
  /// and `gates` are 1-D, `rows` is [N, D] of any float type. Returns the
  /// new accumulator.
  Value scatterAddRows(Value acc, Value ids, Value gates, Value rows);
  /// The same sums as scatterAddRows, bit for bit, computed per (token,
  /// column): an inverse index [T, maxSlotsPerToken] (each token's slots in
  /// slot order, -1 past the last) where every entry is an independent
  /// search over the slots, then one independent sum per output element --
  /// all parallel, deterministic, the form a GPU runs well.
  /// `maxSlotsPerToken` bounds how many slots name one token.
  Value gatherAddRows(Value acc, Value ids, Value gates, Value rows,
                      Value maxSlotsPerToken);

  /// With `lanes` > 0 (a power of two), the reductions of softmax (the max)
  /// and rankAlong (integer counts) are split over that many lanes, each
  /// scanning every lanes-th element, and combined by a butterfly of xor
  /// shuffles (gpu.shuffle): the lanes of a GPU warp share one reduction.
  /// Max and integer sums are exact in any order, so results do not change;
  /// float sums stay sequential (their order decides the rounding).
  void setWarpLanes(int64_t count) { lanes = count; }

  /// Numerically stable softmax of an f32 matrix along `dim` (0 or 1), with
  /// the exp of buildRoutingExp:
  /// exp(x - max) / sum(exp(x - max)).
  Value softmax(Value matrix, unsigned dim);
  /// Elementwise logistic sigmoid 1 / (1 + exp(-x)) of an f32 tensor, with
  /// the exp of buildRoutingExp.
  Value sigmoid(Value tensor);

  /// Returns, for an f32 matrix, the rank of every element along `dim` (1:
  /// within its row, 0: within its column) as integers of `type`: the number
  /// of elements of that row (column) that are larger, or equal and at a
  /// lower index. The ranks of a row (column) are a permutation of 0..N-1, so
  /// rank < k selects the top k with ties going to the lower index.
  /// With `countInLoop`, the values become order-preserving i32 keys (stored
  /// with the ranked dimension contiguous) and each element counts them in
  /// scf.for loops inside the generic (loop-carried counts of one integer
  /// compare each, which stay in registers and vectorize on CPUs); else the
  /// count is the generic's reduction loop (every loop of the generic
  /// visible, for the GPU mapping).
  Value rankAlong(Value matrix, unsigned dim, Type type,
                  bool countInLoop = false);

private:
  Value gatherRowsInto(Value tokens, Value ids, bool guardReads,
                       bool depthBeforeLastSlot);

  /// Lane 0 of a [..., lanes] tensor of per-lane results.
  Value laneZero(Value partial);
  /// Combines `value` across `lanes` lanes by xor shuffles.
  Value
  butterfly(Value value,
            function_ref<Value(OpBuilder &, Location, Value, Value)> combine);

  int64_t lanes = 0;
};

} // namespace mlir::moe::detail

#endif // MOE_DIALECT_MOE_UTILS_LOWERINGBUILDER_H
