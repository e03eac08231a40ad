//===- MoE.h - MoE dialect --------------------------------------*- C++ -*-===//
//
// This file is the one public header of the `moe` dialect: it declares the
// dialect, its enums, the routing policy interface and attributes, and the
// ops.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOE_H
#define MOE_DIALECT_MOE_IR_MOE_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <optional>

#include "moe/Dialect/MoE/IR/MoEDialect.h.inc"
#include "moe/Dialect/MoE/IR/MoEEnums.h.inc"

namespace mlir::moe {

/// Returns `capacityFactor * topK * numTokens / numExperts` in f64, left to
/// right: the slots per expert before rounding up.
double computeCapacitySlots(double capacityFactor, int64_t topK,
                            int64_t numTokens, int64_t numExperts);

/// Returns the slots per expert `C = ceil(capacityFactor * topK * numTokens /
/// numExperts)`, evaluated in f64 left to right so that every backend and the
/// reference agree bit for bit; dynamic when `numTokens` is; failure when C
/// does not fit int64.
FailureOr<int64_t> computeCapacity(double capacityFactor, int64_t topK,
                                   int64_t numTokens, int64_t numExperts);

/// Checks that a tensor an moe op reads or writes (`what`, e.g. "scores")
/// has no static size 0 and that its static sizes and its size in bytes fit
/// int64; reports through `emitError` which size is 0 or which product
/// overflows. `dimNames` names the dimensions in messages (e.g. {"T", "D"}).
LogicalResult verifyTensorSizes(function_ref<InFlightDiagnostic()> emitError,
                                StringRef what, ShapedType type,
                                ArrayRef<StringRef> dimNames = {});
/// verifyTensorSizes on `value`'s type (when it is a ranked shaped type),
/// reporting on `op`.
LogicalResult verifyValueSizes(Operation *op, StringRef what, Value value,
                               ArrayRef<StringRef> dimNames = {});

namespace detail {
/// Parse and print the real-valued and boolean parameters of the routing
/// policy attributes.
FailureOr<APFloat> parseF64Parameter(AsmParser &parser);
FailureOr<std::optional<APFloat>> parseOptionalF64Parameter(AsmParser &parser);
void printF64Parameter(AsmPrinter &printer, const APFloat &value);
FailureOr<bool> parseBoolParameter(AsmParser &parser);
/// Formats a double in its shortest round-trip form (`1.25`, `2.0`).
std::string formatF64(double value);
} // namespace detail

} // namespace mlir::moe

#include "moe/Dialect/MoE/IR/MoEAttrInterfaces.h.inc"

#define GET_ATTRDEF_CLASSES
#include "moe/Dialect/MoE/IR/MoEAttrs.h.inc"

#define GET_OP_CLASSES
#include "moe/Dialect/MoE/IR/MoEOps.h.inc"

#endif // MOE_DIALECT_MOE_IR_MOE_H
