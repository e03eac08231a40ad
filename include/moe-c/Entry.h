/*===-- moe-c/Entry.h - Checked entry points of compiled layers ---*- C -*-===*\
|*                                                                            *|
|* Every public function `@f` that moe-cpu-pipeline compiles with a C         *|
|* interface also gets a checked twin `_mlir_ciface_f_checked` (pass          *|
|* moe-checked-entry-points). The twin takes the same memref descriptors,     *|
|* validates each of them before running the layer, and returns a            *|
|* MoeEntryStatus: 0 when the layer ran, otherwise the kind of the first      *|
|* error in its low byte and the index of the offending argument above it.   *|
|* On error the layer does not run:                                           *|
|*                                                                            *|
|*  - with results-to-out-params=true, `int32_t f_checked(args..., outs...)`  *|
|*    returns the status and leaves the out-parameters untouched;             *|
|*  - with results-to-out-params=false, the twin returns the status first    *|
|*    and then the results, through the result struct passed first:          *|
|*    `void f_checked(struct {int32_t status; Desc r0; ...} *, args...)`. On  *|
|*    error every result is a fresh zero-filled buffer of the declared static *|
|*    sizes (0 for each dynamic size), so that the caller frees it exactly as *|
|*    it frees a good result.                                                 *|
|*                                                                            *|
|* A descriptor carries no element type: the element type is the symbol's    *|
|* (see the function's signature); calling it with another one cannot be     *|
|* detected here. Nor can the length of the allocation behind a pointer: the  *|
|* sizes are trusted to describe it.                                          *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef MOE_C_ENTRY_H
#define MOE_C_ENTRY_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The kinds of error a checked entry point reports (the low byte of its
/// status). The checks of one argument run in this order; the first
/// argument with an error, and its first error, is reported.
typedef enum MoeEntryStatus {
  /// Every argument passed its checks; the layer ran.
  MOE_ENTRY_OK = 0,
  /// A dynamic size is negative.
  MOE_ENTRY_NEGATIVE_SIZE = 1,
  /// A size differs from the static size of the function's type.
  MOE_ENTRY_WRONG_STATIC_SIZE = 2,
  /// The aligned pointer of a memref with at least one element is NULL.
  MOE_ENTRY_NULL_POINTER = 3,
  /// The aligned pointer is not a multiple of the element's ABI alignment
  /// (what the loads and stores of the compiled code assume).
  MOE_ENTRY_MISALIGNED_POINTER = 4,
  /// The offset is not 0.
  MOE_ENTRY_NONZERO_OFFSET = 5,
  /// The strides are not the contiguous row-major strides of the sizes
  /// (not looked at for a memref without elements, nor for a dimension of
  /// size 1: nothing steps over them).
  MOE_ENTRY_NOT_CONTIGUOUS = 6,
  /// Two dynamic sizes that the function requires to be equal (e.g. the
  /// token count of two arguments one linalg op iterates together) differ;
  /// the argument index is the second one's.
  MOE_ENTRY_INCONSISTENT_SIZE = 7,
} MoeEntryStatus;

/// The kind of error of a status a checked entry point returned.
static inline MoeEntryStatus moeEntryStatusKind(int32_t status) {
  return (MoeEntryStatus)(status & 0xff);
}

/// The index of the argument a nonzero status is about: 0-based, in the
/// function's own argument list (out-parameters are its last arguments; the
/// result struct a results-returning twin takes first is not counted).
static inline int32_t moeEntryStatusArgument(int32_t status) {
  return status >> 8;
}

/// The enumerator's name of the kind of `status`, e.g.
/// "MOE_ENTRY_NULL_POINTER"; "MOE_ENTRY_UNKNOWN" for no kind above.
static inline const char *moeEntryStatusName(int32_t status) {
  switch (moeEntryStatusKind(status)) {
  case MOE_ENTRY_OK:
    return "MOE_ENTRY_OK";
  case MOE_ENTRY_NEGATIVE_SIZE:
    return "MOE_ENTRY_NEGATIVE_SIZE";
  case MOE_ENTRY_WRONG_STATIC_SIZE:
    return "MOE_ENTRY_WRONG_STATIC_SIZE";
  case MOE_ENTRY_NULL_POINTER:
    return "MOE_ENTRY_NULL_POINTER";
  case MOE_ENTRY_MISALIGNED_POINTER:
    return "MOE_ENTRY_MISALIGNED_POINTER";
  case MOE_ENTRY_NONZERO_OFFSET:
    return "MOE_ENTRY_NONZERO_OFFSET";
  case MOE_ENTRY_NOT_CONTIGUOUS:
    return "MOE_ENTRY_NOT_CONTIGUOUS";
  case MOE_ENTRY_INCONSISTENT_SIZE:
    return "MOE_ENTRY_INCONSISTENT_SIZE";
  }
  return "MOE_ENTRY_UNKNOWN";
}

#ifdef __cplusplus
}
#endif

#endif /* MOE_C_ENTRY_H */
