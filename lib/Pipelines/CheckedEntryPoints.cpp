//===- CheckedEntryPoints.cpp - Validating twins of C entries ---*- C++ -*-===//
//
// This file implements moe-checked-entry-points: for every public function
// with a C interface, a `_checked` twin that checks each memref descriptor
// (sizes, pointer, alignment, offset, strides, sizes the function ties) with
// branch-free arithmetic, and calls the function only when all pass.
//
//===----------------------------------------------------------------------===//

#include "moe/Pipelines/CheckedEntryPoints.h"

#include "moe-c/Entry.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Interfaces/DataLayoutInterfaces.h"

#include <set>

namespace mlir::moe {
#define GEN_PASS_DEF_CHECKEDENTRYPOINTS
#include "moe/Pipelines/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// One dimension of one argument.
struct ArgDim {
  unsigned arg;
  unsigned dim;
  bool operator<(const ArgDim &other) const {
    return std::tie(arg, dim) < std::tie(other.arg, other.dim);
  }
};

/// A memref argument as the checks see it: its runtime metadata.
struct CheckedArg {
  Value value;
  unsigned index;
  MemRefType type;
  SmallVector<Value> sizes;
  SmallVector<Value> strides;
  Value offset;
  Value pointer;
};

bool isIdentityMemRef(Type type) {
  auto memref = dyn_cast<MemRefType>(type);
  return memref && memref.getLayout().isIdentity();
}

bool isZeroableScalar(Type type) {
  return isa<IntegerType, IndexType, FloatType>(type);
}

/// The memref type the twin takes for `type`: same rank, element type and
/// memory space, every size, stride and the offset dynamic.
MemRefType getOpaqueType(MemRefType type) {
  SmallVector<int64_t> dynamic(type.getRank(), ShapedType::kDynamic);
  auto layout =
      StridedLayoutAttr::get(type.getContext(), ShapedType::kDynamic, dynamic);
  return MemRefType::get(dynamic, type.getElementType(), layout,
                         type.getMemorySpace());
}

/// Pairs of argument dimensions that `func` requires to be equal: operands
/// of one linalg structured op (or a memref.copy) in the entry block that
/// are arguments of `func` and whose dimensions the indexing maps send to
/// the same loop. Ops in nested regions may not run, so they tie nothing.
SmallVector<std::pair<ArgDim, ArgDim>> deriveTies(func::FuncOp func) {
  Block &entry = func.getBody().front();
  auto argumentIndex = [&](Value value) -> std::optional<unsigned> {
    auto arg = dyn_cast<BlockArgument>(value);
    if (!arg || arg.getOwner() != &entry || !isa<MemRefType>(arg.getType()))
      return std::nullopt;
    return arg.getArgNumber();
  };
  std::set<std::pair<ArgDim, ArgDim>> seen;
  SmallVector<std::pair<ArgDim, ArgDim>> ties;
  auto tie = [&](ArgDim a, ArgDim b) {
    if (a.arg == b.arg && a.dim == b.dim)
      return;
    auto typeA = cast<MemRefType>(func.getArgument(a.arg).getType());
    auto typeB = cast<MemRefType>(func.getArgument(b.arg).getType());
    // Two static sizes are the types' business, not a runtime check's.
    if (!typeA.isDynamicDim(a.dim) && !typeB.isDynamicDim(b.dim))
      return;
    if (seen.insert({a, b}).second)
      ties.push_back({a, b});
  };
  for (Operation &op : entry) {
    if (auto copy = dyn_cast<memref::CopyOp>(op)) {
      std::optional<unsigned> source = argumentIndex(copy.getSource());
      std::optional<unsigned> target = argumentIndex(copy.getTarget());
      if (!source || !target)
        continue;
      auto rank = cast<MemRefType>(copy.getSource().getType()).getRank();
      for (unsigned dim = 0; dim < rank; ++dim)
        tie({*source, dim}, {*target, dim});
      continue;
    }
    auto linalgOp = dyn_cast<linalg::LinalgOp>(op);
    if (!linalgOp || !linalgOp.hasPureBufferSemantics())
      continue;
    // The first argument dimension seen for each loop.
    DenseMap<unsigned, ArgDim> loopAnchor;
    for (OpOperand &operand : op.getOpOperands()) {
      std::optional<unsigned> arg = argumentIndex(operand.get());
      if (!arg)
        continue;
      AffineMap map = linalgOp.getMatchingIndexingMap(&operand);
      for (auto [dim, expr] : llvm::enumerate(map.getResults())) {
        auto loop = dyn_cast<AffineDimExpr>(expr);
        if (!loop)
          continue;
        ArgDim here{*arg, static_cast<unsigned>(dim)};
        auto [it, inserted] = loopAnchor.try_emplace(loop.getPosition(), here);
        if (!inserted)
          tie(it->second, here);
      }
    }
  }
  return ties;
}

/// Builds the checks of `func`'s memref arguments and returns the status
/// (an i32, 0 when every check passes).
Value buildStatus(OpBuilder &b, Location loc, ArrayRef<CheckedArg> args,
                  ArrayRef<std::pair<ArgDim, ArgDim>> ties,
                  const DataLayout &layout) {
  DenseMap<int64_t, Value> constants;
  auto constant = [&](int64_t value) -> Value {
    Value &cached = constants[value];
    if (!cached)
      cached = arith::ConstantIndexOp::create(b, loc, value);
    return cached;
  };
  Value zero = constant(0), one = constant(1);
  Value falseValue = arith::ConstantIntOp::create(b, loc, 0, 1);
  auto cmp = [&](arith::CmpIPredicate predicate, Value lhs, Value rhs) {
    return arith::CmpIOp::create(b, loc, predicate, lhs, rhs).getResult();
  };
  auto orOf = [&](Value lhs, Value rhs) -> Value {
    return b.createOrFold<arith::OrIOp>(loc, lhs, rhs);
  };
  auto andOf = [&](Value lhs, Value rhs) -> Value {
    return b.createOrFold<arith::AndIOp>(loc, lhs, rhs);
  };

  // (failed, status) in the order they are reported.
  SmallVector<std::pair<Value, int32_t>> checks;
  auto addCheck = [&](Value failed, MoeEntryStatus kind, unsigned index) {
    checks.push_back({failed, static_cast<int32_t>(kind) |
                                  static_cast<int32_t>(index << 8)});
  };
  for (const CheckedArg &arg : args) {
    ArrayRef<int64_t> shape = arg.type.getShape();
    Value negative = falseValue, wrongStatic = falseValue, empty = falseValue;
    for (auto [dim, size] : llvm::enumerate(arg.sizes)) {
      if (ShapedType::isDynamic(shape[dim]))
        negative = orOf(negative, cmp(arith::CmpIPredicate::slt, size, zero));
      else
        wrongStatic = orOf(wrongStatic, cmp(arith::CmpIPredicate::ne, size,
                                            constant(shape[dim])));
      empty = orOf(empty, cmp(arith::CmpIPredicate::eq, size, zero));
    }
    addCheck(negative, MOE_ENTRY_NEGATIVE_SIZE, arg.index);
    addCheck(wrongStatic, MOE_ENTRY_WRONG_STATIC_SIZE, arg.index);

    Value isNull = cmp(arith::CmpIPredicate::eq, arg.pointer, zero);
    Value notEmpty = arith::XOrIOp::create(
        b, loc, empty, arith::ConstantIntOp::create(b, loc, 1, 1));
    addCheck(andOf(isNull, notEmpty), MOE_ENTRY_NULL_POINTER, arg.index);

    uint64_t alignment = layout.getTypeABIAlignment(arg.type.getElementType());
    Value misaligned = falseValue;
    if (alignment > 1) {
      Value low =
          arith::AndIOp::create(b, loc, arg.pointer, constant(alignment - 1));
      misaligned = cmp(arith::CmpIPredicate::ne, low, zero);
    }
    addCheck(misaligned, MOE_ENTRY_MISALIGNED_POINTER, arg.index);
    addCheck(cmp(arith::CmpIPredicate::ne, arg.offset, zero),
             MOE_ENTRY_NONZERO_OFFSET, arg.index);

    // Row-major: stride[i] = prod(sizes[i+1..]); a size-1 dimension is
    // never stepped over. Static sizes come from the type (a wrong one was
    // reported above).
    Value notContiguous = falseValue;
    std::optional<int64_t> staticExpected = 1;
    Value expected;
    for (int64_t dim = arg.type.getRank() - 1; dim >= 0; --dim) {
      bool dynamic = ShapedType::isDynamic(shape[dim]);
      Value expectedValue =
          staticExpected ? constant(*staticExpected) : expected;
      if (!dynamic && shape[dim] != 1)
        notContiguous =
            orOf(notContiguous, cmp(arith::CmpIPredicate::ne, arg.strides[dim],
                                    expectedValue));
      if (dynamic) {
        // (Named first: the IR must not depend on the order in which the
        // compiler evaluates arguments.)
        Value wrongStride =
            cmp(arith::CmpIPredicate::ne, arg.strides[dim], expectedValue);
        Value stepped = cmp(arith::CmpIPredicate::ne, arg.sizes[dim], one);
        notContiguous = orOf(notContiguous, andOf(wrongStride, stepped));
      }
      if (dim == 0)
        break;
      if (staticExpected && !dynamic) {
        *staticExpected *= shape[dim];
        continue;
      }
      expected = arith::MulIOp::create(b, loc, expectedValue,
                                       dynamic ? arg.sizes[dim]
                                               : constant(shape[dim]));
      staticExpected.reset();
    }
    // Nothing is read through the strides of an empty memref (NumPy gives
    // them 0).
    addCheck(andOf(notContiguous, notEmpty), MOE_ENTRY_NOT_CONTIGUOUS,
             arg.index);
  }

  auto sizeOf = [&](ArgDim argDim) {
    for (const CheckedArg &arg : args)
      if (arg.index == argDim.arg)
        return arg.sizes[argDim.dim];
    llvm_unreachable("a tie names a memref argument");
  };
  for (auto [first, second] : ties)
    addCheck(cmp(arith::CmpIPredicate::ne, sizeOf(first), sizeOf(second)),
             MOE_ENTRY_INCONSISTENT_SIZE, second.arg);

  // The first failed check wins: fold them from the last one.
  Value status = arith::ConstantIntOp::create(b, loc, 0, 32);
  for (auto [failed, code] : llvm::reverse(checks)) {
    if (auto folded = getConstantIntValue(failed); folded && *folded == 0)
      continue;
    status = arith::SelectOp::create(
        b, loc, failed, arith::ConstantIntOp::create(b, loc, code, 32), status);
  }
  return status;
}

/// `arg` (checked) as a value of its identity-layout type in `func`.
Value reinterpretContiguous(OpBuilder &b, Location loc, const CheckedArg &arg) {
  ArrayRef<int64_t> shape = arg.type.getShape();
  SmallVector<OpFoldResult> sizes, strides(shape.size());
  for (auto [dim, size] : llvm::enumerate(arg.sizes))
    sizes.push_back(ShapedType::isDynamic(shape[dim])
                        ? OpFoldResult(size)
                        : OpFoldResult(b.getIndexAttr(shape[dim])));
  // The identity layout's strides: static while every later size is.
  int64_t staticStride = 1;
  Value stride;
  for (int64_t dim = arg.type.getRank() - 1; dim >= 0; --dim) {
    if (stride)
      strides[dim] = stride;
    else
      strides[dim] = b.getIndexAttr(staticStride);
    if (dim == 0)
      break;
    if (!stride && !ShapedType::isDynamic(shape[dim])) {
      staticStride *= shape[dim];
      continue;
    }
    if (!stride)
      stride = arith::ConstantIndexOp::create(b, loc, staticStride);
    Value size = ShapedType::isDynamic(shape[dim])
                     ? arg.sizes[dim]
                     : arith::ConstantIndexOp::create(b, loc, shape[dim]);
    stride = arith::MulIOp::create(b, loc, stride, size);
  }
  return memref::ReinterpretCastOp::create(b, loc, arg.type, arg.value,
                                           b.getIndexAttr(0), sizes, strides);
}

} // namespace

FailureOr<func::FuncOp> mlir::moe::buildCheckedEntryPoint(func::FuncOp func) {
  if (func.isExternal() || !func.isPublic() ||
      !func->hasAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName()) ||
      func->hasAttr("moe.checked_entry_of"))
    return failure();
  std::string name = (func.getSymName() + kCheckedEntrySuffix).str();
  auto module = func->getParentOfType<ModuleOp>();
  if (!module || SymbolTable::lookupSymbolIn(module, name))
    return failure();
  FunctionType type = func.getFunctionType();
  for (Type input : type.getInputs())
    if (isa<BaseMemRefType>(input) && !isIdentityMemRef(input))
      return failure();
  for (Type result : type.getResults())
    if (!isIdentityMemRef(result) && !isZeroableScalar(result))
      return failure();

  SmallVector<Type> inputs;
  for (Type input : type.getInputs())
    inputs.push_back(isa<MemRefType>(input)
                         ? getOpaqueType(cast<MemRefType>(input))
                         : input);
  OpBuilder b(func.getContext());
  SmallVector<Type> results = {b.getI32Type()};
  llvm::append_range(results, type.getResults());
  Location loc = func.getLoc();
  b.setInsertionPointAfter(func);
  auto twin =
      func::FuncOp::create(b, loc, name, b.getFunctionType(inputs, results));
  twin->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(), b.getUnitAttr());
  twin->setAttr("moe.checked_entry_of",
                FlatSymbolRefAttr::get(func.getSymNameAttr()));
  Block *entry = twin.addEntryBlock();
  b.setInsertionPointToStart(entry);

  SmallVector<CheckedArg> args;
  for (auto [index, input] : llvm::enumerate(type.getInputs())) {
    auto memref = dyn_cast<MemRefType>(input);
    if (!memref)
      continue;
    Value value = entry->getArgument(index);
    auto metadata = memref::ExtractStridedMetadataOp::create(b, loc, value);
    Value pointer =
        memref::ExtractAlignedPointerAsIndexOp::create(b, loc, value);
    args.push_back({value, static_cast<unsigned>(index), memref,
                    SmallVector<Value>(metadata.getSizes()),
                    SmallVector<Value>(metadata.getStrides()),
                    metadata.getOffset(), pointer});
  }
  Value status =
      buildStatus(b, loc, args, deriveTies(func), DataLayout::closest(func));
  Value ok = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, status,
                                   arith::ConstantIntOp::create(b, loc, 0, 32));
  bool hasResults = type.getNumResults() > 0;
  // Without results the builder terminates the block itself.
  auto branch =
      scf::IfOp::create(b, loc, type.getResults(), ok, /*withElse=*/hasResults);

  // Then: the layer, on the arguments with their checked types.
  if (hasResults)
    b.setInsertionPointToStart(branch.thenBlock());
  else
    b.setInsertionPoint(branch.thenBlock()->getTerminator());
  SmallVector<Value> callArgs(entry->getArguments());
  for (const CheckedArg &arg : args)
    callArgs[arg.index] = reinterpretContiguous(b, loc, arg);
  auto call = func::CallOp::create(b, loc, func, callArgs);
  if (!hasResults) {
    b.setInsertionPointAfter(branch);
    func::ReturnOp::create(b, loc, status);
    return twin;
  }
  scf::YieldOp::create(b, loc, call.getResults());

  // Else: zero results of the declared static sizes (0 for dynamic ones).
  b.setInsertionPointToStart(branch.elseBlock());
  SmallVector<Value> zeros;
  for (Type result : type.getResults()) {
    auto memref = dyn_cast<MemRefType>(result);
    if (!memref) {
      zeros.push_back(arith::ConstantOp::create(
          b, loc, cast<TypedAttr>(b.getZeroAttr(result))));
      continue;
    }
    SmallVector<Value> dynamicSizes(memref.getNumDynamicDims(),
                                    arith::ConstantIndexOp::create(b, loc, 0));
    Value buffer = memref::AllocOp::create(b, loc, memref, dynamicSizes);
    Value zero = arith::ConstantOp::create(
        b, loc, cast<TypedAttr>(b.getZeroAttr(memref.getElementType())));
    linalg::FillOp::create(b, loc, ValueRange{zero}, ValueRange{buffer});
    zeros.push_back(buffer);
  }
  scf::YieldOp::create(b, loc, zeros);

  b.setInsertionPointAfter(branch);
  SmallVector<Value> returned = {status};
  llvm::append_range(returned, branch.getResults());
  func::ReturnOp::create(b, loc, returned);
  return twin;
}

namespace {
struct CheckedEntryPointsPass
    : public moe::impl::CheckedEntryPointsBase<CheckedEntryPointsPass> {
  void runOnOperation() override {
    SmallVector<func::FuncOp> funcs(getOperation().getOps<func::FuncOp>());
    for (func::FuncOp func : funcs)
      (void)moe::buildCheckedEntryPoint(func);
  }
};
} // namespace
