/*===- CUDARuntime.h - moe-mlir CUDA runtime library -------------*- C -*-===*\
|*                                                                            *|
|* The functions MoECUDARuntime exports besides the mgpu* ABI that MLIR's     *|
|* gpu-to-llvm lowering calls: what a program or a Python script needs to     *|
|* move data and time kernels without the CUDA toolkit.                       *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef MOE_RUNTIME_CUDARUNTIME_H
#define MOE_RUNTIME_CUDARUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Loads the driver (libcuda.so.1) and makes the primary context of the
/// default device current. Returns 0 on success; otherwise see
/// moeCudaLastError().
int moeCudaInit(void);

/// The first error any function of this library hit, or "" if none; and
/// clears it.
const char *moeCudaLastError(void);
void moeCudaClearError(void);

/// The default device's name and compute capability (major * 10 + minor).
const char *moeCudaDeviceName(void);
int moeCudaComputeCapability(void);

/// Device memory and copies (synchronous; any direction, unified addressing).
void *moeCudaMalloc(size_t bytes);
void moeCudaFree(void *pointer);
int moeCudaCopy(void *dst, const void *src, size_t bytes);
int moeCudaSynchronize(void);

/// Events for timing on the default stream.
void *moeCudaEventRecordNow(void);
float moeCudaEventElapsedMs(void *start, void *end);
void moeCudaEventFree(void *event);

#ifdef __cplusplus
}
#endif

#endif /* MOE_RUNTIME_CUDARUNTIME_H */
