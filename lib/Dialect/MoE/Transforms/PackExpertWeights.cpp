//===- PackExpertWeights.cpp - moe-pack-expert-weights ----------*- C++ -*-===//
//
// This file adds, next to every layer function with weights to pack, the
// entry point that takes them packed in column panels (#moe.packed) and the
// function that packs them once.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Dialect/MoE/Utils/WeightUses.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEPACKEXPERTWEIGHTS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// The packed layout of function argument `arg` when every use of it is a
/// weight of a moe.expert whose body only multiplies by it, with one
/// logical [K, N] shape; null otherwise.
static PackedWeightAttr layoutFor(BlockArgument arg, int64_t panel,
                                  Type storage) {
  MLIRContext *context = arg.getContext();
  RankedTensorType logical;
  for (OpOperand &use : arg.getUses()) {
    auto expert = dyn_cast<ExpertOp>(use.getOwner());
    if (!expert)
      return {};
    unsigned first = expert.getWeights().getBeginOperandIndex();
    unsigned index = use.getOperandNumber() - first;
    if (use.getOperandNumber() < first || index >= expert.getWeights().size() ||
        expert.getWeightLayout(index))
      return {};
    BlockArgument bodyArg = expert.getBody().front().getArgument(index + 1);
    auto type = dyn_cast<RankedTensorType>(bodyArg.getType());
    if (!type || type.getRank() != 2 || !type.hasStaticShape() ||
        (logical && logical != type) || !hasOnlyPanelMatmulUses(bodyArg))
      return {};
    logical = type;
  }
  if (!logical)
    return {};
  // Only f32 weights are narrowed: another element type is stored as is.
  if (!logical.getElementType().isF32())
    storage = Type();
  return PackedWeightAttr::get(context, panel, storage);
}

/// The [E, ceil(N / P), K, P] type of a packed [E, K, N] weight.
static RankedTensorType packedType(RankedTensorType weight,
                                   PackedWeightAttr layout) {
  auto slice = RankedTensorType::get(weight.getShape().drop_front(),
                                     weight.getElementType());
  RankedTensorType packedSlice = layout.getPackedSliceType(slice);
  SmallVector<int64_t> shape = {weight.getDimSize(0)};
  llvm::append_range(shape, packedSlice.getShape());
  return RankedTensorType::get(shape, packedSlice.getElementType());
}

/// `weight` (f32) rounded to bf16, to nearest even, by integer operations
/// so that every target rounds alike (AVX512-BF16's vcvtneps2bf16 would
/// flush subnormals): bits + 0x7FFF + (bit 16 of bits), upper half; a NaN
/// becomes the quiet NaN of its sign (0x7FC0 | sign).
static Value roundToBF16(RewriterBase &rewriter, Location loc, Value weight) {
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

/// Emits `@<f>_pack_weights`: linalg.pack of each weight, lowered.
static void emitPackFunction(OpBuilder &builder, func::FuncOp func,
                             ArrayRef<unsigned> packedArgs,
                             ArrayRef<PackedWeightAttr> layouts,
                             StringRef name) {
  Location loc = func.getLoc();
  SmallVector<Type> inputs, results;
  for (auto [arg, layout] : llvm::zip(packedArgs, layouts)) {
    auto type = cast<RankedTensorType>(func.getArgument(arg).getType());
    inputs.push_back(type);
    results.push_back(packedType(type, layout));
  }
  auto pack = func::FuncOp::create(builder, loc, name,
                                   builder.getFunctionType(inputs, results));
  pack->setDiscardableAttrs(func->getDiscardableAttrDictionary());
  Block *entry = pack.addEntryBlock();
  IRRewriter rewriter(builder.getContext());
  rewriter.setInsertionPointToStart(entry);
  SmallVector<Value> packed;
  for (auto [weight, type, layout] :
       llvm::zip(entry->getArguments(), results, layouts)) {
    auto resultType = cast<RankedTensorType>(type);
    Value source = weight;
    if (layout.getStorage())
      source = roundToBF16(rewriter, loc, source);
    Value dest = tensor::EmptyOp::create(rewriter, loc, resultType.getShape(),
                                         resultType.getElementType());
    Value zero = arith::ConstantOp::create(
        rewriter, loc, rewriter.getZeroAttr(resultType.getElementType()));
    auto packOp = linalg::PackOp::create(
        rewriter, loc, source, dest, /*innerDimsPos=*/{2},
        /*innerTiles=*/{rewriter.getIndexAttr(layout.getPanel())}, zero,
        /*outerDimsPerm=*/{0, 2, 1});
    packed.push_back(packOp.getResult());
    FailureOr<linalg::LowerPackResult> lowered =
        linalg::lowerPack(rewriter, packOp);
    assert(succeeded(lowered) && "a static pack always lowers");
    packed.back() = lowered->transposeOp->getResult(0);
  }
  func::ReturnOp::create(rewriter, loc, packed);
}

struct PackExpertWeightsPass
    : moe::impl::MoEPackExpertWeightsBase<PackExpertWeightsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    Type storageType;
    if (storage == "bf16") {
      storageType = BFloat16Type::get(&getContext());
    } else if (!storage.empty() && storage != "f32") {
      module.emitError("moe-pack-expert-weights: storage must be f32 (as "
                       "the weights are) or bf16, got '")
          << storage << "'";
      return signalPassFailure();
    }
    if (panel < 1 || panel > PackedWeightAttr::kMaxPanel) {
      module.emitError("moe-pack-expert-weights: panel must be in [1, ")
          << PackedWeightAttr::kMaxPanel << "], got "
          << static_cast<int64_t>(panel);
      return signalPassFailure();
    }
    SymbolTable symbols(module);
    SmallVector<func::FuncOp> funcs(module.getOps<func::FuncOp>());
    for (func::FuncOp func : funcs) {
      if (func.isDeclaration() || !func.isPublic())
        continue;
      SmallVector<unsigned> packedArgs;
      SmallVector<PackedWeightAttr> layouts;
      for (BlockArgument arg : func.getArguments())
        if (PackedWeightAttr layout = layoutFor(arg, panel, storageType)) {
          packedArgs.push_back(arg.getArgNumber());
          layouts.push_back(layout);
        }
      if (packedArgs.empty())
        continue;
      std::string packName = (func.getName() + "_pack_weights").str();
      std::string packedName = (func.getName() + "_packed").str();
      for (StringRef name : {StringRef(packName), StringRef(packedName)})
        if (symbols.lookup(name)) {
          func.emitError("moe-pack-expert-weights: cannot add '")
              << name << "': the module already has a symbol of that name";
          return signalPassFailure();
        }

      OpBuilder builder(func);
      builder.setInsertionPointAfter(func);
      auto packed = cast<func::FuncOp>(builder.clone(*func));
      packed.setName(packedName);
      SmallVector<Type> argTypes(func.getArgumentTypes());
      for (auto [index, layout] : llvm::zip(packedArgs, layouts)) {
        BlockArgument arg = packed.getArgument(index);
        auto type = packedType(cast<RankedTensorType>(arg.getType()), layout);
        arg.setType(type);
        argTypes[index] = type;
        // Every use is a weight of a moe.expert: mark its layout there.
        for (OpOperand &use : arg.getUses()) {
          auto expert = cast<ExpertOp>(use.getOwner());
          unsigned weight = use.getOperandNumber() -
                            expert.getWeights().getBeginOperandIndex();
          SmallVector<Attribute> entries(expert.getWeights().size(),
                                         builder.getUnitAttr());
          if (ArrayAttr old = expert.getWeightLayoutsAttr())
            entries.assign(old.begin(), old.end());
          entries[weight] = layout;
          expert.setWeightLayoutsAttr(builder.getArrayAttr(entries));
        }
      }
      packed.setFunctionType(
          builder.getFunctionType(argTypes, func.getResultTypes()));
      builder.setInsertionPointAfter(func);
      emitPackFunction(builder, func, packedArgs, layouts, packName);
    }
  }
};

} // namespace
