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

#include "WeightStorage.h"

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
                                  Type storage, int64_t group, Type activations,
                                  Type scales) {
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
  bool nibbles = storage && storage.isSignlessInteger(4);
  bool quantized = storage && isa<IntegerType>(storage);
  return PackedWeightAttr::get(context, panel, storage, nibbles ? group : 0,
                               nibbles ? activations : Type(),
                               quantized ? scales : Type());
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

/// The [E, ceil(N / P), P] scales of an [E, K, N] weight quantized in
/// `layout`.
static RankedTensorType scalesType(RankedTensorType weight,
                                   PackedWeightAttr layout) {
  auto slice = RankedTensorType::get(weight.getShape().drop_front(),
                                     weight.getElementType());
  RankedTensorType scaleSlice = layout.getScaleSliceType(slice);
  SmallVector<int64_t> shape = {weight.getDimSize(0)};
  llvm::append_range(shape, scaleSlice.getShape());
  return RankedTensorType::get(shape, scaleSlice.getElementType());
}

/// linalg.pack of `source` along `dim` in tiles of `panel` (zero padding),
/// with `outerPerm`, lowered.
static Value packAlong(RewriterBase &rewriter, Location loc, Value source,
                       RankedTensorType resultType, int64_t dim, int64_t panel,
                       ArrayRef<int64_t> outerPerm) {
  Value dest = tensor::EmptyOp::create(rewriter, loc, resultType.getShape(),
                                       resultType.getElementType());
  Value zero = arith::ConstantOp::create(
      rewriter, loc, rewriter.getZeroAttr(resultType.getElementType()));
  auto packOp = linalg::PackOp::create(
      rewriter, loc, source, dest, /*innerDimsPos=*/{dim},
      /*innerTiles=*/{rewriter.getIndexAttr(panel)}, zero, outerPerm);
  FailureOr<linalg::LowerPackResult> lowered =
      linalg::lowerPack(rewriter, packOp);
  assert(succeeded(lowered) && "a static pack always lowers");
  return lowered->transposeOp ? Value(lowered->transposeOp->getResult(0))
                              : Value(lowered->expandShapeOp.getResult());
}

/// Emits `@<f>_pack_weights`: linalg.pack of each weight, lowered, each
/// quantized one followed by its scales.
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
    if (layout.isQuantized())
      results.push_back(scalesType(type, layout));
  }
  auto pack = func::FuncOp::create(builder, loc, name,
                                   builder.getFunctionType(inputs, results));
  pack->setDiscardableAttrs(func->getDiscardableAttrDictionary());
  Block *entry = pack.addEntryBlock();
  IRRewriter rewriter(builder.getContext());
  rewriter.setInsertionPointToStart(entry);
  SmallVector<Value> packed;
  for (auto [weight, layout] : llvm::zip(entry->getArguments(), layouts)) {
    auto weightType = cast<RankedTensorType>(weight.getType());
    auto resultType = packedType(weightType, layout);
    if (layout.isNibbles()) {
      moe::detail::QuantizedWeight q = moe::detail::quantizeToI4(
          rewriter, loc, weight, layout.getPanel(), layout.getGroup(),
          layout.hasInt8Activations());
      packed.push_back(q.quantized);
      packed.push_back(moe::detail::narrowScales(rewriter, loc, q.scales,
                                                 layout.getScales()));
      continue;
    }
    Value source = weight, scales;
    if (layout.isQuantized()) {
      moe::detail::QuantizedWeight q =
          moe::detail::quantizeToI8(rewriter, loc, weight);
      source = q.quantized;
      scales = q.scales;
    } else if (layout.getStorage()) {
      source = moe::detail::roundToBF16(rewriter, loc, source);
    }
    packed.push_back(packAlong(rewriter, loc, source, resultType, /*dim=*/2,
                               layout.getPanel(), /*outerPerm=*/{0, 2, 1}));
    if (scales)
      packed.push_back(moe::detail::narrowScales(
          rewriter, loc,
          packAlong(
              rewriter, loc, scales,
              scalesType(weightType, layout).clone(weightType.getElementType()),
              /*dim=*/1, layout.getPanel(), /*outerPerm=*/{}),
          layout.getScales()));
  }
  func::ReturnOp::create(rewriter, loc, packed);
}

/// Marks operand `operand` of `expert` (a weight) as packed in `layout`,
/// with `scales` when it is quantized: the expert's scales stay in the
/// order of its quantized weights.
static void markPacked(OpBuilder &builder, ExpertOp expert, unsigned operand,
                       PackedWeightAttr layout, Value scales) {
  unsigned weight = operand - expert.getWeights().getBeginOperandIndex();
  unsigned count = expert.getWeights().size();
  SmallVector<Value> oldScales;
  for (unsigned i = 0; i < count; ++i)
    oldScales.push_back(expert.getWeightScales(i));
  SmallVector<Attribute> entries(count, builder.getUnitAttr());
  if (ArrayAttr old = expert.getWeightLayoutsAttr())
    entries.assign(old.begin(), old.end());
  entries[weight] = layout;
  expert.setWeightLayoutsAttr(builder.getArrayAttr(entries));
  oldScales[weight] = scales;
  SmallVector<Value> newScales;
  for (Value s : oldScales)
    if (s)
      newScales.push_back(s);
  expert.getScalesMutable().assign(newScales);
}

struct PackExpertWeightsPass
    : moe::impl::MoEPackExpertWeightsBase<PackExpertWeightsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    Type storageType;
    if (storage == "bf16") {
      storageType = BFloat16Type::get(&getContext());
    } else if (storage == "i8") {
      storageType = IntegerType::get(&getContext(), 8);
    } else if (storage == "i4") {
      storageType = IntegerType::get(&getContext(), 4);
      if (group < 1 || panel % 2 != 0) {
        module.emitError("moe-pack-expert-weights: storage=i4 needs group "
                         ">= 1 and an even panel, got group=")
            << static_cast<int64_t>(group)
            << " panel=" << static_cast<int64_t>(panel);
        return signalPassFailure();
      }
      if (activations == "i8" && group % 4 != 0) {
        module.emitError("moe-pack-expert-weights: activations=i8 stores "
                         "rows four by four and needs a group that is a "
                         "multiple of 4, got group=")
            << static_cast<int64_t>(group);
        return signalPassFailure();
      }
    } else if (!storage.empty() && storage != "f32") {
      module.emitError("moe-pack-expert-weights: storage must be f32 (as "
                       "the weights are), bf16, i8 or i4, got '")
          << storage << "'";
      return signalPassFailure();
    }
    Type activationType;
    if (activations == "i8") {
      activationType = IntegerType::get(&getContext(), 8);
      if (storage != "i4") {
        module.emitError("moe-pack-expert-weights: activations=i8 is for "
                         "storage=i4 (the integer dot product of 4-bit "
                         "weights), got storage=")
            << (storage.empty() ? std::string("f32") : storage);
        return signalPassFailure();
      }
    } else if (!activations.empty() && activations != "f32") {
      module.emitError("moe-pack-expert-weights: activations must be f32 "
                       "or i8, got '")
          << activations << "'";
      return signalPassFailure();
    }
    Type scaleType;
    if (scales == "f16") {
      scaleType = Float16Type::get(&getContext());
      if (storage != "i8" && storage != "i4") {
        module.emitError("moe-pack-expert-weights: scales=f16 is for "
                         "quantized weights (storage=i8 or i4), got storage=")
            << (storage.empty() ? std::string("f32") : storage);
        return signalPassFailure();
      }
    } else if (!scales.empty() && scales != "f32") {
      module.emitError("moe-pack-expert-weights: scales must be f32 or f16, "
                       "got '")
          << scales << "'";
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
        if (PackedWeightAttr layout = layoutFor(arg, panel, storageType, group,
                                                activationType, scaleType)) {
          auto type = cast<RankedTensorType>(arg.getType());
          if (layout.isNibbles() && type.getDimSize(1) % group != 0) {
            func.emitError("moe-pack-expert-weights: storage=i4 with group=")
                << static_cast<int64_t>(group) << " needs K divisible by "
                << "the group; argument #" << arg.getArgNumber() << " is "
                << type << " (K = " << type.getDimSize(1) << ")";
            return signalPassFailure();
          }
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
      // Each packed weight takes its argument's place; a quantized one's
      // scales come right after it. Inserting from the last keeps the
      // earlier indices valid.
      for (unsigned i = packedArgs.size(); i-- > 0;) {
        unsigned index = packedArgs[i];
        PackedWeightAttr layout = layouts[i];
        BlockArgument arg = packed.getArgument(index);
        auto weightType = cast<RankedTensorType>(arg.getType());
        BlockArgument scales;
        if (layout.isQuantized()) {
          if (failed(packed.insertArgument(index + 1,
                                           scalesType(weightType, layout),
                                           /*argAttrs=*/{}, arg.getLoc())))
            return signalPassFailure();
          scales = packed.getArgument(index + 1);
        }
        arg.setType(packedType(weightType, layout));
        // Every use is a weight of a moe.expert: mark its layout there.
        for (OpOperand &use : llvm::make_early_inc_range(arg.getUses()))
          markPacked(builder, cast<ExpertOp>(use.getOwner()),
                     use.getOperandNumber(), layout, scales);
      }
      SmallVector<Type> argTypes(packed.getBody().front().getArgumentTypes());
      packed.setFunctionType(
          builder.getFunctionType(argTypes, func.getResultTypes()));
      builder.setInsertionPointAfter(func);
      emitPackFunction(builder, func, packedArgs, layouts, packName);
    }
  }
};

} // namespace
