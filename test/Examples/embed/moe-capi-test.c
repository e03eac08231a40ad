/*===- moe-capi-test.c - The moe-mlir C API, end to end ---------*- C -*-===*\
|*                                                                            *|
|* Registers moe in a context, runs pipelines (good, bad option, unlowerable  *|
|* module), then compiles a routing function to a shared library, loads it   *|
|* and calls it. Usage: moe-capi-test <scratch directory>                     *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#include "moe-c/Compile.h"
#include "moe-c/Dialects.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static void printDiagnostics(MlirStringRef text, void *userData) {
  fprintf(stdout, "%s: %.*s", (const char *)userData, (int)text.length,
          text.data);
}

/* Expert choice on 4 tokens and 2 experts: C = ceil(1.0 * 4 / 2) = 2. */
static const char *kRoute =
    "func.func @route(%s: tensor<4x2xf32>) -> (tensor<2x2xi32>, "
    "tensor<2x2xf32>) {\n"
    "  %ids, %gates = moe.route #moe.expert_choice<capacity_factor = 1.0> %s\n"
    "      : tensor<4x2xf32> -> tensor<2x2xi32>, tensor<2x2xf32>\n"
    "  return %ids, %gates : tensor<2x2xi32>, tensor<2x2xf32>\n"
    "}\n";

/* An expert whose output width is dynamic cannot be lowered. */
static const char *kUnlowerable =
    "func.func @f(%xe: tensor<2x3x4xf32>, %w: tensor<2x4x?xf32>) -> "
    "tensor<2x3x?xf32> {\n"
    "  %0 = moe.expert %xe weights(%w : tensor<2x4x?xf32>) : tensor<2x3x4xf32> "
    "-> tensor<2x3x?xf32> {\n"
    "  ^bb0(%r: tensor<3x4xf32>, %a: tensor<4x?xf32>):\n"
    "    %c1 = arith.constant 1 : index\n"
    "    %n = tensor.dim %a, %c1 : tensor<4x?xf32>\n"
    "    %e = tensor.empty(%n) : tensor<3x?xf32>\n"
    "    moe.yield %e : tensor<3x?xf32>\n"
    "  }\n"
    "  return %0 : tensor<2x3x?xf32>\n"
    "}\n";

typedef struct {
  void *allocated, *aligned;
  int64_t offset, sizes[2], strides[2];
} Desc2D;

static Desc2D describe(void *data, int64_t rows, int64_t cols) {
  Desc2D d = {data, data, 0, {rows, cols}, {cols, 1}};
  return d;
}

static MlirModule parse(MlirContext ctx, const char *text) {
  return mlirModuleCreateParse(ctx, mlirStringRefCreateFromCString(text));
}

int main(int argc, char **argv) {
  if (argc != 2)
    return 1;
  MlirDialectRegistry registry = mlirDialectRegistryCreate();
  moeRegisterAllDialects(registry);
  MlirContext ctx = mlirContextCreateWithRegistry(registry, false);
  mlirDialectRegistryDestroy(registry);
  moeRegisterAllPasses();

  MlirModule module = parse(ctx, kRoute);
  if (mlirModuleIsNull(module))
    return 2;
  MlirLogicalResult ok = moeRunPassPipeline(
      module, mlirStringRefCreateFromCString("builtin.module(moe-cpu-pipeline)"),
      printDiagnostics, "good pipeline");
  printf("good pipeline: %s\n", mlirLogicalResultIsSuccess(ok) ? "ok" : "failed");
  mlirModuleDestroy(module);

  module = parse(ctx, kRoute);
  if (mlirModuleIsNull(module))
    return 2;
  ok = moeRunPassPipeline(
      module,
      mlirStringRefCreateFromCString("builtin.module(moe-cpu-pipeline{fast=1})"),
      printDiagnostics, "bad option");
  printf("bad option: %s\n", mlirLogicalResultIsSuccess(ok) ? "ok" : "failed");
  mlirModuleDestroy(module);

  module = parse(ctx, kUnlowerable);
  if (mlirModuleIsNull(module))
    return 2;
  ok = moeRunPassPipeline(
      module, mlirStringRefCreateFromCString("builtin.module(moe-cpu-pipeline)"),
      printDiagnostics, "unlowerable");
  printf("unlowerable: %s\n", mlirLogicalResultIsSuccess(ok) ? "ok" : "failed");
  mlirModuleDestroy(module);
  mlirContextDestroy(ctx);

  /* One call from text to a shared library. */
  char path[4096];
  snprintf(path, sizeof(path), "%s/libroute.so", argv[1]);
  ok = moeCompileToSharedLibrary(
      mlirStringRefCreateFromCString("func.func @broken("),
      mlirStringRefCreateFromCString(""), mlirStringRefCreateFromCString(path),
      printDiagnostics, "parse error");
  printf("parse error: %s\n", mlirLogicalResultIsSuccess(ok) ? "ok" : "failed");
  ok = moeCompileToSharedLibrary(mlirStringRefCreateFromCString(kRoute),
                                 mlirStringRefCreateFromCString("fast=1"),
                                 mlirStringRefCreateFromCString(path),
                                 printDiagnostics, "compile option");
  printf("compile option: %s\n",
         mlirLogicalResultIsSuccess(ok) ? "ok" : "failed");
  ok = moeCompileToSharedLibrary(
      mlirStringRefCreateFromCString(kRoute),
      mlirStringRefCreateFromCString("results-to-out-params=true"),
      mlirStringRefCreateFromCString(path), printDiagnostics, "compile");
  printf("compile: %s\n", mlirLogicalResultIsSuccess(ok) ? "ok" : "failed");
  if (mlirLogicalResultIsFailure(ok))
    return 3;

  void *lib = dlopen(path, RTLD_NOW);
  if (!lib) {
    printf("dlopen: %s\n", dlerror());
    return 4;
  }
  /* With results-to-out-params, the static results are out-parameters:
     route(logits, ids, gates). */
  typedef void (*RouteFn)(Desc2D *, Desc2D *, Desc2D *);
  RouteFn route = (RouteFn)dlsym(lib, "_mlir_ciface_route");
  if (!route)
    return 5;
  float logits[8] = {2, 0, 0, 2, 1, 0, 0, 1};
  int32_t ids[4];
  float gates[4];
  Desc2D in = describe(logits, 4, 2), outIds = describe(ids, 2, 2),
         outGates = describe(gates, 2, 2);
  route(&in, &outIds, &outGates);
  printf("ids: %d %d | %d %d\n", ids[0], ids[1], ids[2], ids[3]);
  printf("gates: %.4f %.4f | %.4f %.4f\n", gates[0], gates[1], gates[2],
         gates[3]);
  dlclose(lib);
  return 0;
}
