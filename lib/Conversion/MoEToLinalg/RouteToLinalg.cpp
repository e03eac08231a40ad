//===- RouteToLinalg.cpp - Lower moe.route ----------------------*- C++ -*-===//
//
// This file lowers moe.route to linalg/tensor/scf on tensors. Scores and
// top-k selections are data-parallel linalg.generic ops (a top-k is a rank
// computation: an element is chosen when fewer than k elements beat it, ties
// going to the lower index); only the capacity assignment, which is
// sequential by definition, is an scf loop nest over tensors -- or, with
// `parallel`, independent searches (each slot counts the earlier
// assignments to its expert), quadratic work but no loop-carried state,
// which suits a GPU.
//
//===----------------------------------------------------------------------===//

#include "Patterns.h"
#include "moe/Dialect/MoE/Utils/LoweringBuilder.h"

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

#include <limits>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

namespace {

/// The choices of token-choice routing: expert ids [T, k] in the ids' integer
/// type, in choice order, and their f32 gates.
struct TokenChoices {
  Value experts;
  Value gates;
};

/// The context of one route lowering.
struct RouteLowering {
  LoweringBuilder &b;
  RouteOp op;
  Value scores; // [T, E'] in the scores' type
  Type f32;
  OpFoldResult numTokens;
  int64_t numExperts;
  // Build the scans (capacity assignment, CSR fill, per-token sums) as
  // independent searches instead of sequential loops.
  bool parallel = false;

  Value extract(Value tensor, ValueRange indices) {
    return tensor::ExtractOp::create(b, tensor, indices);
  }
  Value toIndex(Value integer) {
    return arith::IndexCastOp::create(b, b.getIndexType(), integer);
  }

  /// Keeps the `topk_group` groups of experts with the largest sum of their
  /// two best selection scores; the others get -inf.
  Value keepBestGroups(TokenChoiceAttr policy, Value select) {
    int64_t groups = policy.getNGroup();
    int64_t groupSize = numExperts / groups;
    auto grouped = RankedTensorType::get(
        {getConstantIntValue(numTokens).value_or(ShapedType::kDynamic), groups,
         groupSize},
        f32);
    SmallVector<ReassociationIndices> reassociation = {{0}, {1, 2}};
    Value select3 = tensor::ExpandShapeOp::create(
        b, grouped, select, reassociation,
        ArrayRef<OpFoldResult>{numTokens, b.getIndexAttr(groups),
                               b.getIndexAttr(groupSize)});
    Value lowest = b.floatConst(f32, -std::numeric_limits<double>::infinity());
    Value best = b.filled({numTokens, b.getIndexAttr(groups)}, lowest);
    ResultRange top2 = b.generic(
        select3, {{0, 1, 2}}, {best, best}, {{0, 1}, {0, 1}}, 3, {2},
        [](OpBuilder &ob, Location loc, ValueRange args) {
          Value v = args[0], first = args[1], second = args[2];
          Value newFirst = arith::MaximumFOp::create(ob, loc, first, v);
          Value demoted = arith::MinimumFOp::create(ob, loc, first, v);
          Value newSecond = arith::MaximumFOp::create(ob, loc, second, demoted);
          linalg::YieldOp::create(ob, loc, ValueRange{newFirst, newSecond});
        });
    Value groupScores = b.generic(
        {top2[0], top2[1]}, {{0, 1}, {0, 1}},
        b.empty({numTokens, b.getIndexAttr(groups)}, f32), {{0, 1}}, 2, {},
        [](OpBuilder &ob, Location loc, ValueRange args) {
          linalg::YieldOp::create(
              ob, loc,
              arith::AddFOp::create(ob, loc, args[0], args[1]).getResult());
        })[0];
    Type i32 = b.getI32Type();
    Value groupRank =
        b.rankAlong(groupScores, 1, i32, /*countInLoop=*/!parallel);
    int64_t kept = policy.getEffectiveTopkGroup();
    Value masked3 = b.generic(
        {select3, groupRank}, {{0, 1, 2}, {0, 1}},
        b.empty({numTokens, b.getIndexAttr(groups), b.getIndexAttr(groupSize)},
                f32),
        {{0, 1, 2}}, 3, {}, [&](OpBuilder &ob, Location loc, ValueRange args) {
          LoweringBuilder lb(loc, ob);
          Value keep = arith::CmpIOp::create(ob, loc, arith::CmpIPredicate::slt,
                                             args[1], lb.intConst(i32, kept));
          Value masked = arith::SelectOp::create(
              ob, loc, keep, args[0],
              lb.floatConst(f32, -std::numeric_limits<double>::infinity()));
          linalg::YieldOp::create(ob, loc, masked);
        })[0];
    return tensor::CollapseShapeOp::create(b, select.getType(), masked3,
                                           reassociation);
  }

  /// The body of a one-hot pick: where `hit` (true for at most one
  /// iteration of the reduction), adds `item + 1` to the id sum and `gate`
  /// to the gate sum (the id sum starts at -1, or the caller subtracts 1).
  void yieldPick(LoweringBuilder &lb, Value hit, Value item, Value gate,
                 Value idSum, Value gateSum) {
    Type idType = item.getType();
    Value itemPlusOne = arith::AddIOp::create(lb, item, lb.intConst(idType, 1));
    Value id =
        arith::SelectOp::create(lb, hit, itemPlusOne, lb.intConst(idType, 0));
    Value picked =
        arith::SelectOp::create(lb, hit, gate, lb.floatConst(f32, 0.0));
    linalg::YieldOp::create(
        lb, ValueRange{arith::AddIOp::create(lb, idSum, id),
                       arith::AddFOp::create(lb, gateSum, picked)});
  }

  /// Inverts a rank: over loops (a, s, b), reading `rank` and `values` at
  /// `dims`, returns ids[a, s] = the b whose rank is s (-1 if none) and
  /// gates[a, s] = its value (0 if none), as a reduction over b in which at
  /// most one term is non-zero.
  std::pair<Value, Value> pickByRank(Value rank, SmallVector<unsigned> dims,
                                     Value values, OpFoldResult rows,
                                     OpFoldResult slots, Type idType) {
    ResultRange picked =
        b.generic({rank, values}, {dims, dims},
                  {b.filled({rows, slots}, b.intConst(idType, -1)),
                   b.filled({rows, slots}, b.floatConst(f32, 0.0))},
                  {{0, 1}, {0, 1}}, 3, {2},
                  [&](OpBuilder &ob, Location loc, ValueRange args) {
                    LoweringBuilder lb(loc, ob);
                    Value slot = arith::IndexCastOp::create(
                        lb, idType, linalg::IndexOp::create(lb, 1));
                    Value item = arith::IndexCastOp::create(
                        lb, idType, linalg::IndexOp::create(lb, 2));
                    Value hit = arith::CmpIOp::create(
                        lb, arith::CmpIPredicate::eq, args[0], slot);
                    yieldPick(lb, hit, item, args[1], args[2], args[3]);
                  });
    return {picked[0], picked[1]};
  }

  /// pickByRank for the expert-choice layout, as a sequential scatter: each
  /// token t with rank[t, e] < C goes to slot rank[t, e] of expert e
  /// (T x E steps instead of the E x C x T search; the ranks of a column are
  /// a permutation, so every slot is written at most once, and the result
  /// is pickByRank's bit for bit: the gate is 0 + value as in its sum).
  std::pair<Value, Value> scatterByRank(Value rank, Value values,
                                        OpFoldResult experts,
                                        OpFoldResult slots, Type idType) {
    Value ids = b.filled({experts, slots}, b.intConst(idType, -1));
    Value gates = b.filled({experts, slots}, b.floatConst(f32, 0.0));
    Value zero = b.indexConst(0), one = b.indexConst(1);
    Value tokens = getValueOrCreateConstantIndexOp(b, b.getLoc(), numTokens);
    Value expertCount = getValueOrCreateConstantIndexOp(b, b.getLoc(), experts);
    Value slotCount = getValueOrCreateConstantIndexOp(b, b.getLoc(), slots);
    auto loop = scf::ForOp::create(
        b, zero, tokens, one, ValueRange{ids, gates},
        [&](OpBuilder &tb, Location tloc, Value t, ValueRange tokenArgs) {
          auto inner = scf::ForOp::create(
              tb, tloc, zero, expertCount, one, tokenArgs,
              [&](OpBuilder &eb, Location eloc, Value e, ValueRange args) {
                LoweringBuilder lb(eloc, eb);
                Value r = arith::IndexCastOp::create(
                    lb, lb.getIndexType(),
                    tensor::ExtractOp::create(lb, rank, ValueRange{t, e}));
                // (Unsigned: a rank is never negative, and nothing is
                // written out of bounds whatever it is.)
                Value taken = arith::CmpIOp::create(
                    lb, arith::CmpIPredicate::ult, r, slotCount);
                auto ifOp = scf::IfOp::create(
                    lb, taken,
                    [&](OpBuilder &ib, Location iloc) {
                      Value id =
                          arith::IndexCastOp::create(ib, iloc, idType, t);
                      Value value = arith::AddFOp::create(
                          ib, iloc,
                          arith::ConstantOp::create(ib, iloc,
                                                    ib.getZeroAttr(f32)),
                          tensor::ExtractOp::create(ib, iloc, values,
                                                    ValueRange{t, e}));
                      scf::YieldOp::create(
                          ib, iloc,
                          ValueRange{
                              tensor::InsertOp::create(ib, iloc, id, args[0],
                                                       ValueRange{e, r}),
                              tensor::InsertOp::create(ib, iloc, value, args[1],
                                                       ValueRange{e, r})});
                    },
                    [&](OpBuilder &ib, Location iloc) {
                      scf::YieldOp::create(ib, iloc, args);
                    });
                scf::YieldOp::create(eb, eloc, ifOp.getResults());
              });
          scf::YieldOp::create(tb, tloc, inner.getResults());
        });
    return {loop.getResult(0), loop.getResult(1)};
  }

  /// Every token's top-k experts and gates.
  TokenChoices chooseExperts(TokenChoiceAttr policy, Type idType) {
    Value logits = b.convertElements(scores, f32);
    Value probs = policy.getScore() == ScoreFunction::Softmax
                      ? b.softmax(logits, 1)
                      : b.sigmoid(logits);
    OpFoldResult experts = b.getIndexAttr(numExperts);
    Value select = probs;
    if (Value bias = op.getBias()) {
      Value bias32 = b.convertElements(bias, f32);
      select = b.generic(
          {probs, bias32}, {{0, 1}, {1}}, b.empty({numTokens, experts}, f32),
          {{0, 1}}, 2, {}, [](OpBuilder &ob, Location loc, ValueRange args) {
            linalg::YieldOp::create(
                ob, loc,
                arith::AddFOp::create(ob, loc, args[0], args[1]).getResult());
          })[0];
    }
    if (policy.getNGroup() > 1)
      select = keepBestGroups(policy, select);
    Value rank = b.rankAlong(select, 1, idType, /*countInLoop=*/!parallel);

    // The expert of rank j is token t's j-th choice.
    int64_t topK = policy.getTopK();
    OpFoldResult k = b.getIndexAttr(topK);
    auto chosen = pickByRank(rank, {0, 2}, probs, numTokens, k, idType);
    Value gates = chosen.second;

    double scale = policy.getRoutedScalingFactorValue();
    if (!policy.getNormalize() && scale == 1.0)
      return {chosen.first, gates};
    Value sum;
    if (policy.getNormalize())
      sum = b.generic(
          gates, {{0, 1}}, b.filled({numTokens}, b.floatConst(f32, 0.0)), {{0}},
          2, {1}, [](OpBuilder &ob, Location loc, ValueRange args) {
            linalg::YieldOp::create(
                ob, loc,
                arith::AddFOp::create(ob, loc, args[0], args[1]).getResult());
          })[0];
    bool normalize = policy.getNormalize();
    SmallVector<Value> inputs = {gates};
    SmallVector<SmallVector<unsigned>> inDims = {{0, 1}};
    if (normalize) {
      inputs.push_back(sum);
      inDims.push_back({0});
    }
    gates = b.generic(
        inputs, inDims, b.empty({numTokens, k}, f32), {{0, 1}}, 2, {},
        [&](OpBuilder &ob, Location loc, ValueRange args) {
          LoweringBuilder lb(loc, ob);
          Value gate = args[0];
          if (normalize) {
            // All-zero gates (sigmoid of very negative logits) stay zero
            // instead of becoming 0/0.
            Value positive =
                arith::CmpFOp::create(ob, loc, arith::CmpFPredicate::OGT,
                                      args[1], lb.floatConst(f32, 0.0));
            Value divided = arith::DivFOp::create(ob, loc, gate, args[1]);
            gate = arith::SelectOp::create(ob, loc, positive, divided, gate);
          }
          if (scale != 1.0)
            gate =
                arith::MulFOp::create(ob, loc, gate, lb.floatConst(f32, scale));
          linalg::YieldOp::create(ob, loc, gate);
        })[0];
    return {chosen.first, gates};
  }

  /// The slots per expert, from the result type or computed at run time as
  /// ceil(factor * k * T / E) in f64, in the same order as computeCapacity.
  OpFoldResult capacity(RankedTensorType idsType, double factor, int64_t topK) {
    int64_t staticCapacity = idsType.getDimSize(1);
    if (!ShapedType::isDynamic(staticCapacity))
      return b.getIndexAttr(staticCapacity);
    Type f64 = b.getF64Type();
    Value tokens = getValueOrCreateConstantIndexOp(b, b.getLoc(), numTokens);
    Value tokens64 = arith::IndexCastOp::create(b, b.getI64Type(), tokens);
    Value tokensF = arith::SIToFPOp::create(b, f64, tokens64);
    Value scaled = arith::MulFOp::create(
        b, b.floatConst(f64, factor * static_cast<double>(topK)), tokensF);
    Value perExpert = arith::DivFOp::create(
        b, scaled, b.floatConst(f64, static_cast<double>(numExperts)));
    Value ceil = math::CeilOp::create(b, perExpert);
    // A run-time T so large that C passes 2^62 would make the conversion
    // poison; such a C cannot be allocated anyway, so it is held at 2^62.
    Value most = b.floatConst(f64, 4611686018427387904.0);
    Value bounded = arith::MinimumFOp::create(b, ceil, most);
    Value slots = arith::FPToSIOp::create(b, b.getI64Type(), bounded);
    return arith::IndexCastOp::create(b, b.getIndexType(), slots).getResult();
  }

  /// Each token's rank [T, 1] by descending first-choice gate, ties by
  /// index: the first-choice gates as a column, ranked within the column.
  Value priorityRank(TokenChoices choices, Type rankType) {
    OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
    auto keyType = RankedTensorType::get(
        {getConstantIntValue(numTokens).value_or(ShapedType::kDynamic), 1},
        f32);
    Value key = tensor::ExtractSliceOp::create(
        b, keyType, choices.gates, ArrayRef<OpFoldResult>{zero, zero},
        ArrayRef<OpFoldResult>{numTokens, one},
        ArrayRef<OpFoldResult>{one, one});
    return b.rankAlong(key, 0, rankType, /*countInLoop=*/!parallel);
  }

  /// The order in which tokens claim slots: by index (`position`), or by
  /// descending first-choice gate, ties by index (`priority`).
  Value priorityOrder(TokenChoices choices, Type idType) {
    Value rank = priorityRank(choices, b.getI32Type());
    Value tokens = getValueOrCreateConstantIndexOp(b, b.getLoc(), numTokens);
    Value order0 = b.filled({numTokens}, b.intConst(idType, 0));
    auto loop = scf::ForOp::create(
        b, b.indexConst(0), tokens, b.indexConst(1), ValueRange{order0},
        [&](OpBuilder &ob, Location loc, Value t, ValueRange args) {
          LoweringBuilder lb(loc, ob);
          Value position = arith::IndexCastOp::create(
              ob, loc, ob.getIndexType(),
              tensor::ExtractOp::create(ob, loc, rank,
                                        ValueRange{t, lb.indexConst(0)}));
          Value token = arith::IndexCastOp::create(ob, loc, idType, t);
          Value order = tensor::InsertOp::create(ob, loc, token, args[0],
                                                 ValueRange{position});
          scf::YieldOp::create(ob, loc, order);
        });
    return loop.getResult(0);
  }

  /// An integer of `type` from loop dimension `dim` of a linalg body.
  static Value indexAs(OpBuilder &ob, Location loc, unsigned dim, Type type) {
    return arith::IndexCastOp::create(ob, loc, type,
                                      linalg::IndexOp::create(ob, loc, dim));
  }

  /// The order in which tokens claim slots as a rank per token [T]: the
  /// token's index (`position`), or its rank by descending first-choice
  /// gate, ties by index (`priority`).
  Value claimRank(TokenChoices choices, TokenChoiceAttr policy, Type idType) {
    if (policy.getOrder() == CapacityOrder::Priority) {
      return b.generic(priorityRank(choices, idType), {{0, 1}},
                       b.empty({numTokens}, idType), {{0}}, 2, {},
                       [](OpBuilder &ob, Location loc, ValueRange args) {
                         linalg::YieldOp::create(ob, loc, args[0]);
                       })[0];
    }
    return b.generic({}, {}, b.empty({numTokens}, idType), {{0}}, 1, {},
                     [&](OpBuilder &ob, Location loc, ValueRange) {
                       linalg::YieldOp::create(ob, loc,
                                               indexAs(ob, loc, 0, idType));
                     })[0];
  }

  /// Places assignment (t, j) at `slot[t, j]` of its expert's slots: over
  /// loops (e, c, t, j), ids[e, c] = the token whose assignment to e has
  /// slot c (-1 if none), gates[e, c] its gate (0 if none). With `offsets`,
  /// the output is the CSR rows [N] instead and the row is offsets[e] +
  /// slot. Each output element is an independent search.
  std::pair<Value, Value> placeBySlot(TokenChoices choices, Value slot,
                                      ArrayRef<OpFoldResult> outSizes,
                                      Value offsets, Type idType,
                                      Type gateType) {
    bool rows = static_cast<bool>(offsets);
    unsigned outRank = rows ? 1 : 2;
    SmallVector<unsigned> outDims =
        rows ? SmallVector<unsigned>{0} : SmallVector<unsigned>{0, 1};
    SmallVector<unsigned> inDims = {outRank, outRank + 1};
    ResultRange placed = b.generic(
        {choices.experts, slot, choices.gates}, {inDims, inDims, inDims},
        {b.filled(outSizes, b.intConst(idType, 0)),
         b.filled(outSizes, b.floatConst(f32, 0.0))},
        {outDims, outDims}, outRank + 2, {outRank, outRank + 1},
        [&](OpBuilder &ob, Location loc, ValueRange args) {
          LoweringBuilder lb(loc, ob);
          Value expert = args[0], at = args[1];
          Value match;
          if (rows) {
            Value row = arith::AddIOp::create(
                lb,
                tensor::ExtractOp::create(lb, offsets,
                                          ValueRange{arith::IndexCastOp::create(
                                              lb, lb.getIndexType(), expert)}),
                at);
            match = arith::CmpIOp::create(lb, arith::CmpIPredicate::eq, row,
                                          indexAs(lb, loc, 0, idType));
          } else {
            Value sameExpert =
                arith::CmpIOp::create(lb, arith::CmpIPredicate::eq, expert,
                                      indexAs(lb, loc, 0, idType));
            Value sameSlot = arith::CmpIOp::create(
                lb, arith::CmpIPredicate::eq, at, indexAs(lb, loc, 1, idType));
            match = arith::AndIOp::create(lb, sameExpert, sameSlot);
          }
          yieldPick(lb, match, indexAs(lb, loc, outRank, idType), args[2],
                    args[3], args[4]);
        });
    Value ids = b.generic(
        placed[0], {outDims}, b.empty(outSizes, idType), {outDims}, outRank, {},
        [&](OpBuilder &ob, Location loc, ValueRange args) {
          LoweringBuilder lb(loc, ob);
          linalg::YieldOp::create(
              lb, arith::SubIOp::create(lb, args[0], lb.intConst(idType, 1))
                      .getResult());
        })[0];
    return {ids, b.convertElements(placed[1], gateType)};
  }

  /// Capacity assignment as independent searches: assignment (t, j)'s slot
  /// is the number of earlier assignments (choice by choice, then by claim
  /// rank) to the same expert; slots from C on are dropped.
  SmallVector<Value> lowerCapacityParallel(TokenChoiceAttr policy,
                                           TokenChoices choices,
                                           OpFoldResult slots, Type idType,
                                           Type gateType) {
    Value rank = claimRank(choices, policy, idType);
    OpFoldResult k = b.getIndexAttr(policy.getTopK());
    Value slot = b.generic(
        {choices.experts, choices.experts, rank, rank},
        {{0, 1}, {2, 3}, {0}, {2}},
        b.filled({numTokens, k}, b.intConst(idType, 0)), {{0, 1}}, 4, {2, 3},
        [&](OpBuilder &ob, Location loc, ValueRange args) {
          LoweringBuilder lb(loc, ob);
          Value j = linalg::IndexOp::create(lb, 1);
          Value j2 = linalg::IndexOp::create(lb, 3);
          Value same = arith::CmpIOp::create(lb, arith::CmpIPredicate::eq,
                                             args[0], args[1]);
          Value earlierChoice =
              arith::CmpIOp::create(lb, arith::CmpIPredicate::ult, j2, j);
          Value sameChoice =
              arith::CmpIOp::create(lb, arith::CmpIPredicate::eq, j2, j);
          Value earlierToken = arith::CmpIOp::create(
              lb, arith::CmpIPredicate::slt, args[3], args[2]);
          Value before = arith::OrIOp::create(
              lb, earlierChoice,
              arith::AndIOp::create(lb, sameChoice, earlierToken));
          Value counts = arith::AndIOp::create(lb, same, before);
          Value inc = arith::SelectOp::create(
              lb, counts, lb.intConst(idType, 1), lb.intConst(idType, 0));
          linalg::YieldOp::create(
              lb, arith::AddIOp::create(lb, args[4], inc).getResult());
        })[0];
    auto placed =
        placeBySlot(choices, slot, {b.getIndexAttr(numExperts), slots}, Value(),
                    idType, gateType);
    return {placed.first, placed.second};
  }

  /// Token choice with a capacity: the choices fill each expert's C slots
  /// choice by choice, in token order; later assignments are dropped.
  SmallVector<Value> lowerCapacity(TokenChoiceAttr policy) {
    auto idsType = cast<RankedTensorType>(op.getResult(0).getType());
    auto gatesType = cast<RankedTensorType>(op.getResult(1).getType());
    Type idType = idsType.getElementType();
    Type gateType = gatesType.getElementType();
    TokenChoices choices = chooseExperts(policy, idType);
    OpFoldResult slots =
        capacity(idsType, *policy.getCapacityFactorValue(), policy.getTopK());
    if (parallel)
      return lowerCapacityParallel(policy, choices, slots, idType, gateType);
    Value slotsValue = getValueOrCreateConstantIndexOp(b, b.getLoc(), slots);
    OpFoldResult experts = b.getIndexAttr(numExperts);
    Value ids = b.filled({experts, slots}, b.intConst(idType, -1));
    Value gates = b.filled({experts, slots}, b.floatConst(gateType, 0.0));
    Value counts = b.filled({experts}, b.intConst(idType, 0));
    Value order;
    if (policy.getOrder() == CapacityOrder::Priority)
      order = priorityOrder(choices, idType);
    Value tokens = getValueOrCreateConstantIndexOp(b, b.getLoc(), numTokens);

    auto outer = scf::ForOp::create(
        b, b.indexConst(0), b.indexConst(policy.getTopK()), b.indexConst(1),
        ValueRange{ids, gates, counts},
        [&](OpBuilder &ob, Location loc, Value j, ValueRange outerArgs) {
          LoweringBuilder lb(loc, ob);
          auto inner = scf::ForOp::create(
              lb, lb.indexConst(0), tokens, lb.indexConst(1), outerArgs,
              [&](OpBuilder &ib, Location iloc, Value r, ValueRange args) {
                LoweringBuilder il(iloc, ib);
                RouteLowering nested{il,  op,        scores,
                                     f32, numTokens, numExperts};
                Value t = order ? nested.toIndex(nested.extract(order, r)) : r;
                Value e =
                    nested.toIndex(nested.extract(choices.experts, {t, j}));
                Value c = nested.toIndex(nested.extract(args[2], e));
                Value fits = arith::CmpIOp::create(
                    il, arith::CmpIPredicate::ult, c, slotsValue);
                auto ifOp = scf::IfOp::create(
                    il, fits,
                    [&](OpBuilder &tb, Location tloc) {
                      LoweringBuilder tl(tloc, tb);
                      Value token = arith::IndexCastOp::create(tl, idType, t);
                      Value gate = tl.convertFloat(
                          tensor::ExtractOp::create(tl, choices.gates,
                                                    ValueRange{t, j}),
                          gateType);
                      Value next = arith::IndexCastOp::create(
                          tl, idType,
                          arith::AddIOp::create(tl, c, tl.indexConst(1)));
                      Value newIds = tensor::InsertOp::create(
                          tl, token, args[0], ValueRange{e, c});
                      Value newGates = tensor::InsertOp::create(
                          tl, gate, args[1], ValueRange{e, c});
                      Value newCounts = tensor::InsertOp::create(
                          tl, next, args[2], ValueRange{e});
                      scf::YieldOp::create(
                          tl, ValueRange{newIds, newGates, newCounts});
                    },
                    [&](OpBuilder &eb, Location eloc) {
                      scf::YieldOp::create(eb, eloc, args);
                    });
                scf::YieldOp::create(il, ifOp.getResults());
              });
          scf::YieldOp::create(lb, inner.getResults());
        });
    return {outer.getResult(0), outer.getResult(1)};
  }

  /// Dropless token choice: every assignment, grouped by expert (CSR).
  SmallVector<Value> lowerDropless(TokenChoiceAttr policy) {
    auto idsType = cast<RankedTensorType>(op.getResult(0).getType());
    auto gatesType = cast<RankedTensorType>(op.getResult(1).getType());
    Type idType = idsType.getElementType();
    Type gateType = gatesType.getElementType();
    TokenChoices choices = chooseExperts(policy, idType);
    int64_t topK = policy.getTopK();
    OpFoldResult experts = b.getIndexAttr(numExperts);

    // counts[e] = #{(t, j) : experts[t, j] == e}.
    Value counts = b.generic(
        choices.experts, {{1, 2}}, b.filled({experts}, b.intConst(idType, 0)),
        {{0}}, 3, {1, 2}, [&](OpBuilder &ob, Location loc, ValueRange args) {
          LoweringBuilder lb(loc, ob);
          Value e = arith::IndexCastOp::create(
              ob, loc, idType, linalg::IndexOp::create(ob, loc, 0));
          Value hit = arith::CmpIOp::create(ob, loc, arith::CmpIPredicate::eq,
                                            args[0], e);
          Value inc = arith::SelectOp::create(
              ob, loc, hit, lb.intConst(idType, 1), lb.intConst(idType, 0));
          linalg::YieldOp::create(
              ob, loc,
              arith::AddIOp::create(ob, loc, args[1], inc).getResult());
        })[0];

    // offsets[e + 1] = offsets[e] + counts[e].
    Value offsets;
    if (parallel) {
      offsets = b.generic(
          counts, {{1}},
          b.filled({b.getIndexAttr(numExperts + 1)}, b.intConst(idType, 0)),
          {{0}}, 2, {1}, [&](OpBuilder &ob, Location loc, ValueRange args) {
            LoweringBuilder lb(loc, ob);
            Value below = arith::CmpIOp::create(lb, arith::CmpIPredicate::ult,
                                                linalg::IndexOp::create(lb, 1),
                                                linalg::IndexOp::create(lb, 0));
            Value term = arith::SelectOp::create(lb, below, args[0],
                                                 lb.intConst(idType, 0));
            linalg::YieldOp::create(
                lb, arith::AddIOp::create(lb, args[1], term).getResult());
          })[0];
    } else {
      Value offsets0 =
          b.filled({b.getIndexAttr(numExperts + 1)}, b.intConst(idType, 0));
      auto prefix = scf::ForOp::create(
          b, b.indexConst(0), b.indexConst(numExperts), b.indexConst(1),
          ValueRange{offsets0},
          [&](OpBuilder &ob, Location loc, Value e, ValueRange args) {
            LoweringBuilder lb(loc, ob);
            Value sum = arith::AddIOp::create(
                lb, tensor::ExtractOp::create(lb, args[0], ValueRange{e}),
                tensor::ExtractOp::create(lb, counts, ValueRange{e}));
            Value next = arith::AddIOp::create(lb, e, lb.indexConst(1));
            scf::YieldOp::create(
                lb, tensor::InsertOp::create(lb, sum, args[0], ValueRange{next})
                        .getResult());
          });
      offsets = prefix.getResult(0);
    }

    Value tokens = getValueOrCreateConstantIndexOp(b, b.getLoc(), numTokens);
    OpFoldResult rows = b.getIndexAttr(idsType.getDimSize(0));
    if (idsType.isDynamicDim(0))
      rows = arith::MulIOp::create(b, tokens, b.indexConst(topK)).getResult();
    if (parallel) {
      // Row of (t, j): offsets[e] + the earlier tokens that chose e.
      OpFoldResult k = b.getIndexAttr(topK);
      Value slot = b.generic(
          {choices.experts, choices.experts}, {{0, 1}, {2, 3}},
          b.filled({numTokens, k}, b.intConst(idType, 0)), {{0, 1}}, 4, {2, 3},
          [&](OpBuilder &ob, Location loc, ValueRange args) {
            LoweringBuilder lb(loc, ob);
            Value same = arith::CmpIOp::create(lb, arith::CmpIPredicate::eq,
                                               args[0], args[1]);
            Value earlier = arith::CmpIOp::create(
                lb, arith::CmpIPredicate::ult, linalg::IndexOp::create(lb, 2),
                linalg::IndexOp::create(lb, 0));
            Value inc = arith::SelectOp::create(
                lb, arith::AndIOp::create(lb, same, earlier),
                lb.intConst(idType, 1), lb.intConst(idType, 0));
            linalg::YieldOp::create(
                lb, arith::AddIOp::create(lb, args[2], inc).getResult());
          })[0];
      auto placed =
          placeBySlot(choices, slot, {rows}, offsets, idType, gateType);
      return {placed.first, placed.second, offsets};
    }
    Value ids = b.filled({rows}, b.intConst(idType, -1));
    Value gates = b.filled({rows}, b.floatConst(gateType, 0.0));
    auto cursorType = RankedTensorType::get({numExperts}, idType);
    Value cursor = tensor::ExtractSliceOp::create(
        b, cursorType, offsets, ArrayRef<OpFoldResult>{b.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{experts},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1)});

    // Token by token, each assignment takes the next row of its expert.
    auto outer = scf::ForOp::create(
        b, b.indexConst(0), tokens, b.indexConst(1),
        ValueRange{ids, gates, cursor},
        [&](OpBuilder &ob, Location loc, Value t, ValueRange outerArgs) {
          LoweringBuilder lb(loc, ob);
          auto inner = scf::ForOp::create(
              lb, lb.indexConst(0), lb.indexConst(topK), lb.indexConst(1),
              outerArgs,
              [&](OpBuilder &ib, Location iloc, Value j, ValueRange args) {
                LoweringBuilder il(iloc, ib);
                Value expertId = tensor::ExtractOp::create(il, choices.experts,
                                                           ValueRange{t, j});
                Value e =
                    arith::IndexCastOp::create(il, il.getIndexType(), expertId);
                Value row =
                    tensor::ExtractOp::create(il, args[2], ValueRange{e});
                Value p =
                    arith::IndexCastOp::create(il, il.getIndexType(), row);
                Value token = arith::IndexCastOp::create(il, idType, t);
                Value gate =
                    il.convertFloat(tensor::ExtractOp::create(il, choices.gates,
                                                              ValueRange{t, j}),
                                    gateType);
                Value next =
                    arith::AddIOp::create(il, row, il.intConst(idType, 1));
                Value newIds =
                    tensor::InsertOp::create(il, token, args[0], ValueRange{p});
                Value newGates =
                    tensor::InsertOp::create(il, gate, args[1], ValueRange{p});
                Value newCursor =
                    tensor::InsertOp::create(il, next, args[2], ValueRange{e});
                scf::YieldOp::create(il,
                                     ValueRange{newIds, newGates, newCursor});
              });
          scf::YieldOp::create(lb, inner.getResults());
        });
    return {outer.getResult(0), outer.getResult(1), offsets};
  }

  /// Expert choice: expert e takes the tokens whose rank in column e of the
  /// probabilities is below C.
  SmallVector<Value> lowerExpertChoice(ExpertChoiceAttr policy) {
    auto idsType = cast<RankedTensorType>(op.getResult(0).getType());
    auto gatesType = cast<RankedTensorType>(op.getResult(1).getType());
    Type idType = idsType.getElementType();
    Value probs = b.softmax(b.convertElements(scores, f32), 1);
    Value rank = b.rankAlong(probs, 0, idType, /*countInLoop=*/!parallel);
    OpFoldResult slots = capacity(idsType, policy.getCapacityFactorValue(), 1);
    OpFoldResult experts = b.getIndexAttr(numExperts);
    // Slot c of expert e holds the token of rank c in column e.
    auto taken = parallel
                     ? pickByRank(rank, {2, 0}, probs, experts, slots, idType)
                     : scatterByRank(rank, probs, experts, slots, idType);
    Value gates = taken.second;
    if (policy.getNormalize())
      gates = normalizePerToken(taken.first, gates);
    return {taken.first, b.convertElements(gates, gatesType.getElementType())};
  }

  /// Divides every gate of the capacity layout by the sum of its token's
  /// gates (in slot order: experts ascending); empty slots stay zero.
  Value normalizePerToken(Value ids, Value gates) {
    Value zero = b.floatConst(f32, 0.0);
    Value tokens = getValueOrCreateConstantIndexOp(b, b.getLoc(), numTokens);
    Value slots = b.sizeValue(ids, 1);
    auto validToken = [&](LoweringBuilder &lb, Value id) {
      Value index = arith::IndexCastOp::create(lb, lb.getIndexType(), id);
      Value nonNegative = arith::CmpIOp::create(lb, arith::CmpIPredicate::sge,
                                                index, lb.indexConst(0));
      Value inRange =
          arith::CmpIOp::create(lb, arith::CmpIPredicate::slt, index, tokens);
      return std::make_pair(
          arith::AndIOp::create(lb, nonNegative, inRange).getResult(), index);
    };
    Value sums;
    if (parallel) {
      // sums[t] over loops (t, e, c), in slot order like the loop below.
      sums = b.generic(
          {ids, gates}, {{1, 2}, {1, 2}}, b.filled({numTokens}, zero), {{0}}, 3,
          {1, 2}, [&](OpBuilder &ob, Location loc, ValueRange args) {
            LoweringBuilder lb(loc, ob);
            Value mine = arith::CmpIOp::create(
                lb, arith::CmpIPredicate::eq,
                arith::IndexCastOp::create(lb, lb.getIndexType(), args[0]),
                linalg::IndexOp::create(lb, 0));
            Value term = arith::SelectOp::create(lb, mine, args[1],
                                                 lb.floatConst(f32, 0.0));
            linalg::YieldOp::create(
                lb, arith::AddFOp::create(lb, args[2], term).getResult());
          })[0];
    } else {
      auto outer = scf::ForOp::create(
          b, b.indexConst(0), b.indexConst(numExperts), b.indexConst(1),
          ValueRange{b.filled({numTokens}, zero)},
          [&](OpBuilder &ob, Location loc, Value e, ValueRange outerArgs) {
            LoweringBuilder lb(loc, ob);
            auto inner = scf::ForOp::create(
                lb, lb.indexConst(0), slots, lb.indexConst(1), outerArgs,
                [&](OpBuilder &ib, Location iloc, Value c, ValueRange args) {
                  LoweringBuilder il(iloc, ib);
                  auto checked = validToken(
                      il, tensor::ExtractOp::create(il, ids, ValueRange{e, c}));
                  Value valid = checked.first, t = checked.second;
                  auto ifOp = scf::IfOp::create(
                      il, valid,
                      [&](OpBuilder &tb, Location tloc) {
                        LoweringBuilder tl(tloc, tb);
                        Value sum = arith::AddFOp::create(
                            tl, tensor::ExtractOp::create(tl, args[0], t),
                            tensor::ExtractOp::create(tl, gates,
                                                      ValueRange{e, c}));
                        scf::YieldOp::create(
                            tl, tensor::InsertOp::create(tl, sum, args[0], t)
                                    .getResult());
                      },
                      [&](OpBuilder &eb, Location eloc) {
                        scf::YieldOp::create(eb, eloc, args[0]);
                      });
                  scf::YieldOp::create(il, ifOp.getResult(0));
                });
            scf::YieldOp::create(lb, inner.getResults());
          });
      sums = outer.getResult(0);
    }
    return b.generic(
        {ids, gates}, {{0, 1}, {0, 1}},
        b.empty({b.getIndexAttr(numExperts), b.size(ids, 1)}, f32), {{0, 1}}, 2,
        {}, [&](OpBuilder &ob, Location loc, ValueRange args) {
          LoweringBuilder lb(loc, ob);
          auto [valid, t] = validToken(lb, args[0]);
          Value safe = arith::SelectOp::create(lb, valid, t, lb.indexConst(0));
          Value sum = tensor::ExtractOp::create(lb, sums, ValueRange{safe});
          Value positive = arith::CmpFOp::create(lb, arith::CmpFPredicate::OGT,
                                                 sum, lb.floatConst(f32, 0.0));
          Value divided = arith::DivFOp::create(lb, args[1], sum);
          Value gate = arith::SelectOp::create(
              lb, arith::AndIOp::create(lb, valid, positive), divided, args[1]);
          linalg::YieldOp::create(lb, gate);
        })[0];
  }

  /// Soft MoE: softmax over tokens (dispatch) and over slots (combine).
  SmallVector<Value> lowerSoft() {
    Type type = getElementTypeOrSelf(scores.getType());
    Value logits = b.convertElements(scores, f32);
    return {b.convertElements(b.softmax(logits, 0), type),
            b.convertElements(b.softmax(logits, 1), type)};
  }
};

struct RouteOpLowering : OpConversionPattern<RouteOp> {
  RouteOpLowering(MLIRContext *ctx, bool parallel, int64_t warpLanes)
      : OpConversionPattern(ctx), parallel(parallel), warpLanes(warpLanes) {}

  LogicalResult
  matchAndRewrite(RouteOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LoweringBuilder b(op.getLoc(), rewriter);
    b.setWarpLanes(warpLanes);
    Value scores = adaptor.getScores();
    RouteLowering lowering{b,
                           op,
                           scores,
                           b.getF32Type(),
                           b.size(scores, 0),
                           op.getNumExperts(),
                           parallel};
    SmallVector<Value> results;
    Attribute policy = op.getPolicy();
    if (auto tokenChoice = dyn_cast<TokenChoiceAttr>(policy)) {
      results = tokenChoice.isDropless() ? lowering.lowerDropless(tokenChoice)
                                         : lowering.lowerCapacity(tokenChoice);
    } else if (auto expertChoice = dyn_cast<ExpertChoiceAttr>(policy)) {
      results = lowering.lowerExpertChoice(expertChoice);
    } else if (isa<SoftAttr>(policy)) {
      results = lowering.lowerSoft();
    } else {
      return rewriter.notifyMatchFailure(op,
                                         "no lowering for this routing policy");
    }
    rewriter.replaceOp(op, results);
    return success();
  }

  bool parallel;
  int64_t warpLanes;
};

} // namespace

void mlir::moe::detail::populateRouteToLinalgPatterns(
    RewritePatternSet &patterns, bool parallel, int64_t warpLanes) {
  patterns.add<RouteOpLowering>(patterns.getContext(), parallel, warpLanes);
}
