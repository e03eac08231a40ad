/*===- moe-capi-test.c - The moe-mlir C API, end to end ---------*- C -*-===*\
|*                                                                            *|
|* Registers moe in a context, runs pipelines (good, bad option, unlowerable  *|
|* module), then compiles a routing function to a shared library, loads it   *|
|* and calls it, unchecked and through its checked entry (one good call and  *|
|* one bad call per kind of error). Usage: moe-capi-test <scratch directory>  *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#include "moe-c/Compile.h"
#include "moe-c/Dialects.h"
#include "moe-c/Entry.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static void printDiagnostics(MlirStringRef text, void *userData) {
  fprintf(stdout, "%s: %.*s", (const char *)userData, (int)text.length,
          text.data);
}

/* Expert choice on 4 tokens and 2 experts: C = ceil(1.0 * 4 / 2) = 2; and
   a function with a dynamic size. */
static const char *kRoute =
    "func.func @route(%s: tensor<4x2xf32>) -> (tensor<2x2xi32>, "
    "tensor<2x2xf32>) {\n"
    "  %ids, %gates = moe.route #moe.expert_choice<capacity_factor = 1.0> %s\n"
    "      : tensor<4x2xf32> -> tensor<2x2xi32>, tensor<2x2xf32>\n"
    "  return %ids, %gates : tensor<2x2xi32>, tensor<2x2xf32>\n"
    "}\n"
    /* Column sums of a + b, both T x 2 with T dynamic: the generic ties
       their T, which the checked entry then compares. */
    "func.func @colsum(%a: tensor<?x2xf32>, %b: tensor<?x2xf32>) -> "
    "tensor<2xf32> {\n"
    "  %zero = arith.constant 0.0 : f32\n"
    "  %e = tensor.empty() : tensor<2xf32>\n"
    "  %init = linalg.fill ins(%zero : f32) outs(%e : tensor<2xf32>) -> "
    "tensor<2xf32>\n"
    "  %sum = linalg.generic {indexing_maps = [affine_map<(t, d) -> (t, d)>, "
    "affine_map<(t, d) -> (t, d)>, affine_map<(t, d) -> (d)>], "
    "iterator_types = [\"reduction\", \"parallel\"]} ins(%a, %b : "
    "tensor<?x2xf32>, tensor<?x2xf32>) outs(%init : tensor<2xf32>) {\n"
    "  ^bb0(%va: f32, %vb: f32, %acc: f32):\n"
    "    %ab = arith.addf %va, %vb : f32\n"
    "    %s = arith.addf %acc, %ab : f32\n"
    "    linalg.yield %s : f32\n"
    "  } -> tensor<2xf32>\n"
    "  return %sum : tensor<2xf32>\n"
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

typedef struct {
  void *allocated, *aligned;
  int64_t offset, sizes[1], strides[1];
} Desc1D;

static Desc2D describe(void *data, int64_t rows, int64_t cols) {
  Desc2D d = {data, data, 0, {rows, cols}, {cols, 1}};
  return d;
}

static void printStatus(const char *what, int32_t status) {
  printf("checked %s: %s (argument %d)\n", what, moeEntryStatusName(status),
         (int)moeEntryStatusArgument(status));
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

  /* The checked entry: the same descriptors, a MoeEntryStatus back; on
     error the layer does not run and the out-parameters keep their values. */
  typedef int32_t (*CheckedRouteFn)(Desc2D *, Desc2D *, Desc2D *);
  CheckedRouteFn checkedRoute =
      (CheckedRouteFn)dlsym(lib, "_mlir_ciface_route_checked");
  if (!checkedRoute)
    return 6;
  int32_t status = checkedRoute(&in, &outIds, &outGates);
  printStatus("good", status);
  printf("checked ids: %d %d | %d %d\n", ids[0], ids[1], ids[2], ids[3]);
  ids[0] = -7;
  Desc2D bad = describe(logits, 4, 3); /* 3 experts for a 2-expert router */
  printStatus("wrong size", checkedRoute(&bad, &outIds, &outGates));
  bad = describe(NULL, 2, 2);
  printStatus("null ids", checkedRoute(&in, &bad, &outGates));
  bad = describe((char *)gates + 1, 2, 2);
  printStatus("misaligned gates", checkedRoute(&in, &outIds, &bad));
  bad = describe(logits, 4, 2);
  bad.offset = 1;
  printStatus("offset", checkedRoute(&bad, &outIds, &outGates));
  bad = describe(logits, 4, 2);
  bad.strides[0] = 1; /* column-major */
  bad.strides[1] = 4;
  printStatus("strided", checkedRoute(&bad, &outIds, &outGates));
  printf("untouched: %d\n", ids[0]);

  /* colsum(a, b, out): T is dynamic, so it must be >= 0 and agree. */
  typedef int32_t (*CheckedColsumFn)(Desc2D *, Desc2D *, Desc1D *);
  CheckedColsumFn colsum =
      (CheckedColsumFn)dlsym(lib, "_mlir_ciface_colsum_checked");
  if (!colsum)
    return 7;
  float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 1, 1, 1, 1, 1}, sums[2];
  Desc2D da = describe(a, 3, 2), db = describe(b, 3, 2);
  Desc1D out = {sums, sums, 0, {2}, {1}};
  printStatus("colsum good", colsum(&da, &db, &out));
  printf("sums: %.1f %.1f\n", sums[0], sums[1]);
  Desc2D negative = describe(a, -1, 2);
  printStatus("negative T", colsum(&negative, &db, &out));
  Desc2D shorter = describe(b, 2, 2);
  printStatus("inconsistent T", colsum(&da, &shorter, &out));
  dlclose(lib);
  return 0;
}
