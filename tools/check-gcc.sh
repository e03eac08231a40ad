#!/usr/bin/env bash
# Builds moe-mlir with g++ in build-gcc/ and runs the lit suite there: the IR
# a pass produces must not depend on the compiler that built it (C++ leaves
# the evaluation order of arguments open, and g++ and clang differ), so the
# FileCheck tests must pass with both. Without clang, CMake leaves the C API
# out (see CMakeLists.txt), so embed-cpp.test runs instead of embed.test.
# JUnit report: RESULTS/lit-gcc.xml (first argument; default build-gcc).
# Environment: MOE_GCC_BUILD (build folder), MOE_JOBS (default 2).
set -euo pipefail

MOE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GCC_BUILD="${MOE_GCC_BUILD:-$MOE_ROOT/build-gcc}"
RESULTS="${1:-$GCC_BUILD}"
LLVM_PREFIX=/usr/lib/llvm-22
mkdir -p "$RESULTS"
rm -f "$RESULTS/lit-gcc.xml"

if [ ! -f "$GCC_BUILD/build.ninja" ]; then
  echo "== configuring $GCC_BUILD with g++"
  cmake -G Ninja -S "$MOE_ROOT" -B "$GCC_BUILD" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ \
    -DMLIR_DIR="$LLVM_PREFIX/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$LLVM_PREFIX/bin/lit" 2>&1 | grep -v "^--" || true
fi
if ! cmake --build "$GCC_BUILD" --parallel "${MOE_JOBS:-2}"; then
  cat > "$RESULTS/lit-gcc.xml" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="gcc" tests="1" failures="1">
  <testcase classname="gcc" name="the g++ build succeeds"><failure message="build failed"/></testcase>
</testsuite>
XML
  exit 1
fi
LIT_OPTS="${LIT_OPTS:-} --xunit-xml-output=$RESULTS/lit-gcc.xml" \
  cmake --build "$GCC_BUILD" --target check-moe
