//===- CUDARuntime.cpp - mgpu* functions over the CUDA driver ---*- C++ -*-===//
//
// This file implements the mgpu* functions that host code lowered by MLIR's
// gpu-to-llvm calls (module load, kernel launch, streams, events, device
// memory), plus a few helpers for programs and Python, over the CUDA driver
// API. The driver is loaded with dlopen at the first call, so the library
// builds with cuda.h alone and loads on machines without a GPU; errors are
// reported on stderr and kept for moeCudaLastError() instead of aborting,
// unless MOE_CUDA_FATAL_ERRORS is set (programs run by mlir-runner have no
// other way to notice a failed launch than their exit status).
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/CUDARuntime.h"

#include <cuda.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#define MOE_EXPORT extern "C" __attribute__((visibility("default")))
#define MOE_STRINGIFY_NAME(x) #x
#define MOE_STRINGIFY(x) MOE_STRINGIFY_NAME(x)

namespace {

/// The driver entry points used here, resolved from libcuda.so.1.
struct Driver {
#define MOE_CU_FN(name) decltype(&::name) name = nullptr;
#include "DriverFunctions.def"
};

Driver driver;
CUcontext context = nullptr;
CUdevice device = 0;
int defaultDevice = 0;
std::once_flag initOnce;
std::mutex errorMutex;
std::string lastError;
bool initialized = false;

bool fatalErrors() {
  static const bool fatal = [] {
    const char *env = std::getenv("MOE_CUDA_FATAL_ERRORS");
    return env && *env && std::strcmp(env, "0") != 0;
  }();
  return fatal;
}

void recordError(const std::string &message) {
  std::fprintf(stderr, "moe-cuda-runtime: %s\n", message.c_str());
  if (fatalErrors()) {
    std::fflush(stderr);
    std::_Exit(1);
  }
  std::lock_guard<std::mutex> lock(errorMutex);
  if (lastError.empty())
    lastError = message;
}

/// Reports a failed driver call; returns true if `result` is success.
bool check(CUresult result, const char *what) {
  if (result == CUDA_SUCCESS)
    return true;
  const char *name = "unknown error";
  if (driver.cuGetErrorName)
    driver.cuGetErrorName(result, &name);
  recordError(std::string(what) + " failed: " + name);
  return false;
}

void initialize() {
  void *handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
  if (!handle) {
    recordError(std::string("cannot load the CUDA driver (libcuda.so.1): ") +
                dlerror());
    return;
  }
  // cuda.h maps names to versioned entry points (cuMemAlloc to
  // cuMemAlloc_v2); the expanded name is the one with this ABI.
#define MOE_CU_FN(name)                                                        \
  driver.name =                                                                \
      reinterpret_cast<decltype(&::name)>(dlsym(handle, MOE_STRINGIFY(name))); \
  if (!driver.name) {                                                          \
    recordError("the CUDA driver has no " MOE_STRINGIFY(name));                \
    return;                                                                    \
  }
#include "DriverFunctions.def"
  if (const char *env = std::getenv("MOE_CUDA_DEVICE"))
    defaultDevice = std::atoi(env);
  if (!check(driver.cuInit(0), "cuInit") ||
      !check(driver.cuDeviceGet(&device, defaultDevice), "cuDeviceGet") ||
      !check(driver.cuDevicePrimaryCtxRetain(&context, device),
             "cuDevicePrimaryCtxRetain"))
    return;
  initialized = true;
}

/// Makes the context current on this thread; false if there is none.
bool ready() {
  std::call_once(initOnce, initialize);
  if (!initialized)
    return false;
  CUcontext current = nullptr;
  driver.cuCtxGetCurrent(&current);
  if (current != context)
    return check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
  return true;
}

} // namespace

//===----------------------------------------------------------------------===//
// The mgpu* ABI of MLIR's gpu-to-llvm lowering.
//===----------------------------------------------------------------------===//

MOE_EXPORT void *mgpuModuleLoad(void *data, size_t /*size*/) {
  CUmodule module = nullptr;
  if (ready())
    check(driver.cuModuleLoadData(&module, data), "cuModuleLoadData");
  return module;
}

MOE_EXPORT void *mgpuModuleLoadJIT(void *data, int optLevel) {
  CUmodule module = nullptr;
  if (!ready())
    return nullptr;
  char log[8192] = {0};
  CUjit_option options[] = {CU_JIT_OPTIMIZATION_LEVEL, CU_JIT_ERROR_LOG_BUFFER,
                            CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *values[] = {reinterpret_cast<void *>(static_cast<intptr_t>(optLevel)),
                    log, reinterpret_cast<void *>(sizeof(log))};
  if (!check(driver.cuModuleLoadDataEx(&module, data, 3, options, values),
             "cuModuleLoadDataEx (PTX JIT)"))
    recordError(std::string("PTX JIT log: ") + log);
  return module;
}

MOE_EXPORT void mgpuModuleUnload(void *module) {
  if (module && initialized)
    check(driver.cuModuleUnload(static_cast<CUmodule>(module)),
          "cuModuleUnload");
}

MOE_EXPORT void *mgpuModuleGetFunction(void *module, const char *name) {
  CUfunction function = nullptr;
  if (!module) {
    recordError(std::string("no module to get kernel '") + name +
                "' from (its load failed)");
    return nullptr;
  }
  if (ready())
    check(driver.cuModuleGetFunction(&function, static_cast<CUmodule>(module),
                                     name),
          "cuModuleGetFunction");
  return function;
}

MOE_EXPORT void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                                 intptr_t gridZ, intptr_t blockX,
                                 intptr_t blockY, intptr_t blockZ,
                                 int32_t sharedBytes, void *stream,
                                 void **params, void **extra,
                                 size_t /*paramsCount*/) {
  // A loop with no iterations maps to an empty grid: nothing to run.
  if (gridX == 0 || gridY == 0 || gridZ == 0)
    return;
  if (!function || !ready())
    return;
  check(driver.cuLaunchKernel(static_cast<CUfunction>(function), gridX, gridY,
                              gridZ, blockX, blockY, blockZ, sharedBytes,
                              static_cast<CUstream>(stream), params, extra),
        "cuLaunchKernel");
}

MOE_EXPORT void *mgpuStreamCreate() {
  CUstream stream = nullptr;
  if (ready())
    check(driver.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING),
          "cuStreamCreate");
  return stream;
}

MOE_EXPORT void mgpuStreamDestroy(void *stream) {
  if (stream && initialized)
    check(driver.cuStreamDestroy(static_cast<CUstream>(stream)),
          "cuStreamDestroy");
}

MOE_EXPORT void mgpuStreamSynchronize(void *stream) {
  if (ready())
    check(driver.cuStreamSynchronize(static_cast<CUstream>(stream)),
          "cuStreamSynchronize");
}

MOE_EXPORT void mgpuStreamWaitEvent(void *stream, void *event) {
  if (ready())
    check(driver.cuStreamWaitEvent(static_cast<CUstream>(stream),
                                   static_cast<CUevent>(event), 0),
          "cuStreamWaitEvent");
}

MOE_EXPORT void *mgpuEventCreate() {
  CUevent event = nullptr;
  if (ready())
    check(driver.cuEventCreate(&event, CU_EVENT_DISABLE_TIMING),
          "cuEventCreate");
  return event;
}

MOE_EXPORT void mgpuEventDestroy(void *event) {
  if (event && initialized)
    check(driver.cuEventDestroy(static_cast<CUevent>(event)), "cuEventDestroy");
}

MOE_EXPORT void mgpuEventSynchronize(void *event) {
  if (ready())
    check(driver.cuEventSynchronize(static_cast<CUevent>(event)),
          "cuEventSynchronize");
}

MOE_EXPORT void mgpuEventRecord(void *event, void *stream) {
  if (ready())
    check(driver.cuEventRecord(static_cast<CUevent>(event),
                               static_cast<CUstream>(stream)),
          "cuEventRecord");
}

MOE_EXPORT void *mgpuMemAlloc(uint64_t bytes, void *stream, bool hostShared) {
  CUdeviceptr pointer = 0;
  if (bytes == 0 || !ready())
    return nullptr;
  if (hostShared)
    check(driver.cuMemAllocManaged(&pointer, bytes, CU_MEM_ATTACH_GLOBAL),
          "cuMemAllocManaged");
  else if (stream)
    check(
        driver.cuMemAllocAsync(&pointer, bytes, static_cast<CUstream>(stream)),
        "cuMemAllocAsync");
  else
    check(driver.cuMemAlloc(&pointer, bytes), "cuMemAlloc");
  return reinterpret_cast<void *>(pointer);
}

MOE_EXPORT void mgpuMemFree(void *pointer, void *stream) {
  if (!pointer || !ready())
    return;
  if (stream)
    check(driver.cuMemFreeAsync(reinterpret_cast<CUdeviceptr>(pointer),
                                static_cast<CUstream>(stream)),
          "cuMemFreeAsync");
  else
    check(driver.cuMemFree(reinterpret_cast<CUdeviceptr>(pointer)),
          "cuMemFree");
}

MOE_EXPORT void mgpuMemcpy(void *dst, void *src, size_t bytes, void *stream) {
  if (bytes && ready())
    check(driver.cuMemcpyAsync(reinterpret_cast<CUdeviceptr>(dst),
                               reinterpret_cast<CUdeviceptr>(src), bytes,
                               static_cast<CUstream>(stream)),
          "cuMemcpyAsync");
}

MOE_EXPORT void mgpuMemset32(void *dst, unsigned int value, size_t count,
                             void *stream) {
  if (count && ready())
    check(driver.cuMemsetD32Async(reinterpret_cast<CUdeviceptr>(dst), value,
                                  count, static_cast<CUstream>(stream)),
          "cuMemsetD32Async");
}

MOE_EXPORT void mgpuMemset16(void *dst, unsigned short value, size_t count,
                             void *stream) {
  if (count && ready())
    check(driver.cuMemsetD16Async(reinterpret_cast<CUdeviceptr>(dst), value,
                                  count, static_cast<CUstream>(stream)),
          "cuMemsetD16Async");
}

/// The descriptor layout of a ranked memref passed as unranked: base and
/// aligned pointers, offset, then sizes and strides.
struct UnrankedDescriptor {
  void *allocated;
  char *aligned;
  int64_t offset;
  int64_t sizesAndStrides[1];
};

MOE_EXPORT void mgpuMemHostRegisterMemRef(int64_t rank, void *descriptor,
                                          int64_t elementBytes) {
  auto *memref = static_cast<UnrankedDescriptor *>(descriptor);
  int64_t count = 1;
  for (int64_t dim = 0; dim < rank; ++dim)
    count *= memref->sizesAndStrides[dim];
  if (count && ready())
    check(driver.cuMemHostRegister(memref->aligned +
                                       memref->offset * elementBytes,
                                   count * elementBytes, 0),
          "cuMemHostRegister");
}

MOE_EXPORT void mgpuMemHostUnregisterMemRef(int64_t rank, void *descriptor,
                                            int64_t elementBytes) {
  auto *memref = static_cast<UnrankedDescriptor *>(descriptor);
  if (ready())
    check(driver.cuMemHostUnregister(memref->aligned +
                                     memref->offset * elementBytes),
          "cuMemHostUnregister");
}

MOE_EXPORT void mgpuSetDefaultDevice(int32_t index) { defaultDevice = index; }

//===----------------------------------------------------------------------===//
// Helpers for programs and Python.
//===----------------------------------------------------------------------===//

MOE_EXPORT int moeCudaInit(void) { return ready() ? 0 : 1; }

MOE_EXPORT const char *moeCudaLastError(void) {
  static thread_local std::string copy;
  std::lock_guard<std::mutex> lock(errorMutex);
  copy = lastError;
  lastError.clear();
  return copy.c_str();
}

MOE_EXPORT void moeCudaClearError(void) {
  std::lock_guard<std::mutex> lock(errorMutex);
  lastError.clear();
}

MOE_EXPORT const char *moeCudaDeviceName(void) {
  static char name[256] = "";
  if (ready())
    check(driver.cuDeviceGetName(name, sizeof(name), device),
          "cuDeviceGetName");
  return name;
}

MOE_EXPORT int moeCudaComputeCapability(void) {
  int major = 0, minor = 0;
  if (!ready())
    return 0;
  check(driver.cuDeviceGetAttribute(
            &major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device),
        "cuDeviceGetAttribute");
  check(driver.cuDeviceGetAttribute(
            &minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device),
        "cuDeviceGetAttribute");
  return major * 10 + minor;
}

MOE_EXPORT void *moeCudaMalloc(size_t bytes) {
  return mgpuMemAlloc(bytes, nullptr, false);
}

MOE_EXPORT void moeCudaFree(void *pointer) { mgpuMemFree(pointer, nullptr); }

MOE_EXPORT int moeCudaCopy(void *dst, const void *src, size_t bytes) {
  if (!bytes)
    return 0;
  if (!ready())
    return 1;
  return check(driver.cuMemcpy(reinterpret_cast<CUdeviceptr>(dst),
                               reinterpret_cast<CUdeviceptr>(src), bytes),
               "cuMemcpy")
             ? 0
             : 1;
}

MOE_EXPORT int moeCudaSynchronize(void) {
  if (!ready())
    return 1;
  return check(driver.cuCtxSynchronize(), "cuCtxSynchronize") ? 0 : 1;
}

MOE_EXPORT void *moeCudaEventRecordNow(void) {
  CUevent event = nullptr;
  if (!ready() ||
      !check(driver.cuEventCreate(&event, CU_EVENT_DEFAULT), "cuEventCreate"))
    return nullptr;
  check(driver.cuEventRecord(event, nullptr), "cuEventRecord");
  return event;
}

MOE_EXPORT float moeCudaEventElapsedMs(void *start, void *end) {
  float ms = -1.0f;
  if (!start || !end || !ready())
    return ms;
  check(driver.cuEventSynchronize(static_cast<CUevent>(end)),
        "cuEventSynchronize");
  check(driver.cuEventElapsedTime(&ms, static_cast<CUevent>(start),
                                  static_cast<CUevent>(end)),
        "cuEventElapsedTime");
  return ms;
}

MOE_EXPORT void moeCudaEventFree(void *event) { mgpuEventDestroy(event); }
