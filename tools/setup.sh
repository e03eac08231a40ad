#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks, then configures and builds
# moe-mlir in build/. Sourced by tools/run.sh and tools/test.sh; safe to rerun
# (installs only missing packages, rebuilds only what changed).
set -euo pipefail

MOE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MOE_BUILD="${MOE_BUILD:-$MOE_ROOT/build}"
LLVM_PREFIX=/usr/lib/llvm-22

packages=(
  cmake ninja-build g++
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools clang-22 libomp-22-dev
  python3 python3-numpy python3-pytest python3-pytest-xdist
)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Build with the clang that built Debian's libMLIR.so: MLIR names template
# TypeIDs after __PRETTY_FUNCTION__, which g++ spells differently, so shared
# objects built with g++ (the C API, the mlir-opt plugin) would disagree
# with libMLIR.so about op traits.
if [ -f "$MOE_BUILD/CMakeCache.txt" ] &&
   ! grep -q "CMAKE_CXX_COMPILER:.*clang++-22" "$MOE_BUILD/CMakeCache.txt"; then
  echo "== $MOE_BUILD was configured with another compiler; reconfiguring"
  rm -rf "$MOE_BUILD"
fi
if [ ! -f "$MOE_BUILD/build.ninja" ]; then
  echo "== configuring $MOE_BUILD"
  cmake -G Ninja -S "$MOE_ROOT" -B "$MOE_BUILD" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DMLIR_DIR="$LLVM_PREFIX/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$LLVM_PREFIX/bin/lit"
fi
echo "== building"
cmake --build "$MOE_BUILD"
