//===- sanitizer-defaults.c - ASan defaults of the sanitizer build -*- C -*-===//
//
// This file gives the tools of a MOE_ENABLE_SANITIZERS build their default
// AddressSanitizer options. Our code includes LLVM's headers instrumented,
// so inline BumpPtrAllocator code in our objects poisons and unpoisons slab
// memory that the uninstrumented copies in libMLIR.so hand out without
// unpoisoning: reports of "use-after-poison" inside libMLIR.so that are not
// bugs. allow_user_poisoning=0 turns that manual poisoning off; every
// other check stays. ASAN_OPTIONS in the environment still comes first.
//
//===----------------------------------------------------------------------===//

__attribute__((visibility("default"))) const char *__asan_default_options(void) {
  return "allow_user_poisoning=0";
}
