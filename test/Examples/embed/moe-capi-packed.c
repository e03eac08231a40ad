/*===- moe-capi-packed.c - Packed weights through the C API ------*- C -*-===*\
|*                                                                            *|
|* Compiles a layer with `pack-weights=true` to a shared library, packs its  *|
|* weight once with `layer_pack_weights`, and checks that `layer_packed`     *|
|* gives what `layer` gives on the unpacked weight. target-cpu=x86-64 (SSE,  *|
|* panels of 8) keeps the packed shape the same on every host.              *|
|* Usage: moe-capi-packed <scratch directory>                                *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#include "moe-c/Compile.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>

/* 4 tokens of width 4, 2 experts with 2 slots each, one [4, 16] weight per
   expert: 16 columns are 2 panels of 8. */
static const char *kLayer =
    "func.func @layer(%x: tensor<4x4xf32>, %ids: tensor<2x2xi32>, "
    "%g: tensor<2x2xf32>, %w: tensor<2x4x16xf32>, %acc: tensor<4x16xf32>) "
    "-> tensor<4x16xf32> {\n"
    "  %xe = moe.dispatch %x indices(%ids : tensor<2x2xi32>) : tensor<4x4xf32> "
    "-> tensor<2x2x4xf32>\n"
    "  %ye = moe.expert %xe weights(%w : tensor<2x4x16xf32>) : "
    "tensor<2x2x4xf32> -> tensor<2x2x16xf32> {\n"
    "  ^bb0(%r: tensor<2x4xf32>, %a: tensor<4x16xf32>):\n"
    "    %z = arith.constant 0.0 : f32\n"
    "    %e = tensor.empty() : tensor<2x16xf32>\n"
    "    %f = linalg.fill ins(%z : f32) outs(%e : tensor<2x16xf32>) -> "
    "tensor<2x16xf32>\n"
    "    %h = linalg.matmul ins(%r, %a : tensor<2x4xf32>, tensor<4x16xf32>) "
    "outs(%f : tensor<2x16xf32>) -> tensor<2x16xf32>\n"
    "    moe.yield %h : tensor<2x16xf32>\n"
    "  }\n"
    "  %y = moe.combine %ye indices(%ids : tensor<2x2xi32>) weights(%g : "
    "tensor<2x2xf32>) into %acc : tensor<2x2x16xf32> -> tensor<4x16xf32>\n"
    "  return %y : tensor<4x16xf32>\n"
    "}\n";

#define DESC(rank)                                                             \
  struct {                                                                     \
    void *allocated, *aligned;                                                 \
    int64_t offset, sizes[rank], strides[rank];                                \
  }
typedef DESC(2) Desc2D;
typedef DESC(3) Desc3D;
typedef DESC(4) Desc4D;

static void printDiagnostics(MlirStringRef text, void *userData) {
  fprintf(stdout, "%s: %.*s", (const char *)userData, (int)text.length,
          text.data);
}

int main(int argc, char **argv) {
  if (argc != 2)
    return 1;
  char path[4096];
  snprintf(path, sizeof(path), "%s/libpacked.so", argv[1]);
  MlirLogicalResult ok = moeCompileToSharedLibrary(
      mlirStringRefCreateFromCString(kLayer),
      mlirStringRefCreateFromCString(
          "pack-weights=true target-cpu=x86-64 results-to-out-params=true"),
      mlirStringRefCreateFromCString(path), printDiagnostics, "compile");
  printf("compile: %s\n", mlirLogicalResultIsSuccess(ok) ? "ok" : "failed");
  if (mlirLogicalResultIsFailure(ok))
    return 2;
  void *lib = dlopen(path, RTLD_NOW);
  if (!lib) {
    printf("dlopen: %s\n", dlerror());
    return 3;
  }
  typedef void (*LayerFn)(Desc2D *, Desc2D *, Desc2D *, Desc3D *, Desc2D *,
                          Desc2D *);
  typedef void (*PackFn)(Desc3D *, Desc4D *);
  typedef void (*PackedFn)(Desc2D *, Desc2D *, Desc2D *, Desc4D *, Desc2D *,
                           Desc2D *);
  LayerFn layer = (LayerFn)dlsym(lib, "_mlir_ciface_layer");
  PackFn pack = (PackFn)dlsym(lib, "_mlir_ciface_layer_pack_weights");
  PackedFn packed = (PackedFn)dlsym(lib, "_mlir_ciface_layer_packed");
  printf("entries: layer %s, pack %s, packed %s\n", layer ? "yes" : "no",
         pack ? "yes" : "no", packed ? "yes" : "no");
  if (!layer || !pack || !packed)
    return 4;

  /* Small integers: every sum is exact, whatever its order. */
  float x[16], w[128], g[4] = {1, 2, 1, 3}, acc[64] = {0};
  for (int i = 0; i < 16; ++i)
    x[i] = (float)(i % 5 - 2);
  for (int i = 0; i < 128; ++i)
    w[i] = (float)(i % 7 - 3);
  int32_t ids[4] = {0, 2, 1, 3};
  /* Packed: [E, N / 8, K, 8], 64-byte aligned. */
  _Alignas(64) float wp[128];
  float y[64], yp[64];
  Desc2D dx = {x, x, 0, {4, 4}, {4, 1}};
  Desc2D dids = {ids, ids, 0, {2, 2}, {2, 1}};
  Desc2D dg = {g, g, 0, {2, 2}, {2, 1}};
  Desc3D dw = {w, w, 0, {2, 4, 16}, {64, 16, 1}};
  Desc4D dwp = {wp, wp, 0, {2, 2, 4, 8}, {64, 32, 8, 1}};
  Desc2D dacc = {acc, acc, 0, {4, 16}, {16, 1}};
  Desc2D dy = {y, y, 0, {4, 16}, {16, 1}};
  Desc2D dyp = {yp, yp, 0, {4, 16}, {16, 1}};
  layer(&dx, &dids, &dg, &dw, &dacc, &dy);
  pack(&dw, &dwp);
  /* Element (e, k, n) of w is at wp[e][n / 8][k][n % 8]. */
  int layoutOk = 1;
  for (int e = 0; e < 2; ++e)
    for (int k = 0; k < 4; ++k)
      for (int n = 0; n < 16; ++n)
        layoutOk &=
            wp[e * 64 + (n / 8) * 32 + k * 8 + n % 8] == w[e * 64 + k * 16 + n];
  printf("packed layout: %s\n", layoutOk ? "ok" : "wrong");
  /* The layer may write its `into` accumulator in place (function
     arguments bufferize as writable): zero it again. */
  for (int i = 0; i < 64; ++i)
    acc[i] = 0;
  packed(&dx, &dids, &dg, &dwp, &dacc, &dyp);
  int same = 1;
  for (int i = 0; i < 64; ++i)
    same &= y[i] == yp[i];
  printf("packed entry: %s\n", same ? "same as unpacked" : "differs");
  if (!same)
    for (int i = 0; i < 64; ++i)
      printf("  y[%d] = %g, packed %g\n", i, y[i], yp[i]);
  printf("y[0..3]: %.0f %.0f %.0f %.0f\n", y[0], y[1], y[2], y[3]);
  dlclose(lib);
  return same && layoutOk ? 0 : 5;
}
