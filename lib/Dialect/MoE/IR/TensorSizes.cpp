//===- TensorSizes.cpp - Checked sizes of moe tensors -----------*- C++ -*-===//
//
// This file implements the size rules every moe op verifies for the tensors
// it reads and writes: no static size is 0, and element counts and byte
// sizes fit int64 (checked arithmetic, so that a huge shape is a diagnostic
// instead of a wrapped size the lowerings would trust).
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoE.h"

#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/CheckedArithmetic.h"
#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace mlir::moe;

LogicalResult
mlir::moe::verifyTensorSizes(function_ref<InFlightDiagnostic()> emitError,
                             StringRef what, ShapedType type,
                             ArrayRef<StringRef> dimNames) {
  ArrayRef<int64_t> shape = type.getShape();
  for (auto [index, dim] : llvm::enumerate(shape)) {
    if (dim != 0)
      continue;
    InFlightDiagnostic diag = emitError();
    if (index < dimNames.size())
      diag << dimNames[index];
    else
      diag << "dimension #" << index;
    diag << " is 0 in " << what << " " << type
         << "; every static size of a layer must be at least 1 (with no "
            "tokens, features, hidden units or experts there is nothing to "
            "compute)";
    if (index < dimNames.size() && dimNames[index] == "T")
      diag << "; write a token count that is only known at run time, and "
              "may be 0, as '?'";
    return diag;
  }
  // Products of the static sizes, as the lowerings compute them (element
  // counts, then bytes), must not wrap.
  auto staticSizes = [&] {
    std::string text;
    llvm::raw_string_ostream os(text);
    llvm::interleave(
        llvm::make_filter_range(
            shape, [](int64_t dim) { return !ShapedType::isDynamic(dim); }),
        os, " * ");
    return text;
  };
  int64_t elements = 1;
  for (int64_t dim : shape) {
    if (ShapedType::isDynamic(dim))
      continue;
    std::optional<int64_t> product = llvm::checkedMul(elements, dim);
    if (!product)
      return emitError() << "too many elements in " << what << " " << type
                         << ": " << staticSizes()
                         << " overflows int64; use smaller sizes";
    elements = *product;
  }
  Type elementType = type.getElementType();
  if (!elementType.isIntOrFloat())
    return success();
  int64_t bytes =
      llvm::divideCeil(elementType.getIntOrFloatBitWidth(), uint64_t{8});
  if (!llvm::checkedMul(elements, bytes))
    return emitError() << "too many bytes in " << what << " " << type << ": "
                       << staticSizes() << " elements of " << bytes
                       << " bytes overflow int64; use smaller sizes";
  return success();
}

LogicalResult mlir::moe::verifyValueSizes(Operation *op, StringRef what,
                                          Value value,
                                          ArrayRef<StringRef> dimNames) {
  auto type = dyn_cast<ShapedType>(value.getType());
  if (!type || !type.hasRank())
    return success();
  return verifyTensorSizes([op] { return op->emitOpError(); }, what, type,
                           dimNames);
}
