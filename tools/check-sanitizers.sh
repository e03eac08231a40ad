#!/usr/bin/env bash
# Builds moe-mlir with AddressSanitizer + UndefinedBehaviorSanitizer in
# build-asan/ (-DMOE_ENABLE_SANITIZERS=ON; libMLIR.so stays uninstrumented),
# then runs under them, each step time-boxed:
#   - the lit suite (check-moe),
#   - the CPU execution tests of bad data (test_data_fuzz.py: NaN/Inf/huge
#     values; test_untrusted_routing.py: out-of-range ids and offsets, T = 0;
#     test_layers.py's special-value layers) with the compiled layers built
#     with ASan too (MOE_SANITIZE=1, the ASan runtime preloaded into Python).
# JUnit reports go to RESULTS (first argument; default build-asan/test-results):
# lit-asan.xml, pytest-asan.xml, plus a failing sanitizers-*.xml for a step
# that ran out of time or a failed build. Exits non-zero when a step failed.
#
# Environment: MOE_ASAN_BUILD (build folder), MOE_SANITIZER_STEP_TIMEOUT
# (seconds per test step, default 900), MOE_SANITIZER_BUILD_TIMEOUT (seconds
# for the build, default 1800: from scratch it took 14 minutes on the shared
# 2-core VM), MOE_JOBS (build jobs, default 2).
set -euo pipefail

MOE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ASAN_BUILD="${MOE_ASAN_BUILD:-$MOE_ROOT/build-asan}"
RESULTS="${1:-$ASAN_BUILD/test-results}"
STEP_TIMEOUT="${MOE_SANITIZER_STEP_TIMEOUT:-900}"
BUILD_TIMEOUT="${MOE_SANITIZER_BUILD_TIMEOUT:-1800}"
LLVM_PREFIX=/usr/lib/llvm-22
mkdir -p "$RESULTS"
rm -f "$RESULTS"/lit-asan.xml "$RESULTS"/pytest-asan.xml "$RESULTS"/sanitizers-*.xml

# The shared ASan runtime comes with libclang-rt-22-dev.
if ! dpkg-query -W -f='${Status}' libclang-rt-22-dev 2>/dev/null | grep -q "install ok installed"; then
  echo "== installing: libclang-rt-22-dev"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends libclang-rt-22-dev
fi
runtime="$(clang-22 -print-file-name=libclang_rt.asan-x86_64.so)"

# A step that runs out of time, or a failed build, is one failed testcase.
failed_step() {  # failed_step FILE TESTCASE-NAME MESSAGE
  cat > "$RESULTS/sanitizers-$1.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="sanitizers" tests="1" failures="1">
  <testcase classname="sanitizers" name="$2"><failure message="$3"/></testcase>
</testsuite>
EOF
}

status=0
step() {  # step NAME SECONDS COMMAND...: runs COMMAND for at most SECONDS
  local name="$1" limit="$2"; shift 2
  local start=$SECONDS rc=0
  echo "== sanitizers: $name"
  timeout --kill-after=30 "$limit" "$@" || rc=$?
  echo "== sanitizers: $name took $((SECONDS - start)) s (exit $rc)"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    failed_step "timeout-$name" "$name finishes within $limit s" timeout
  fi
  [ "$rc" -eq 0 ] || status=1
}

if [ ! -f "$ASAN_BUILD/build.ninja" ]; then
  echo "== configuring $ASAN_BUILD"
  cmake -G Ninja -S "$MOE_ROOT" -B "$ASAN_BUILD" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DMLIR_DIR="$LLVM_PREFIX/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$LLVM_PREFIX/bin/lit" \
    -DMOE_ENABLE_SANITIZERS=ON
fi
step build "$BUILD_TIMEOUT" cmake --build "$ASAN_BUILD" --parallel "${MOE_JOBS:-2}"
if [ $status -ne 0 ]; then
  echo "== sanitizers: the build failed; nothing ran" >&2
  failed_step build "the sanitizer build succeeds" "build failed"
  exit 1
fi

step lit "$STEP_TIMEOUT" env LIT_OPTS="${LIT_OPTS:-} --xunit-xml-output=$RESULTS/lit-asan.xml" \
  cmake --build "$ASAN_BUILD" --target check-moe

step pytest "$STEP_TIMEOUT" env PYTHONPATH="$MOE_ROOT/python" MOE_BUILD="$ASAN_BUILD" MOE_SANITIZE=1 \
  LD_PRELOAD="$runtime" ASAN_OPTIONS=detect_leaks=0:allow_user_poisoning=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ASAN_SYMBOLIZER_PATH="$LLVM_PREFIX/bin/llvm-symbolizer" \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider ${MOE_PYTEST_JOBS:-} \
  "$MOE_ROOT/python/tests/test_data_fuzz.py" "$MOE_ROOT/python/tests/test_untrusted_routing.py" \
  "$MOE_ROOT/python/tests/test_layers.py" \
  -k "special or untrusted" --junitxml="$RESULTS/pytest-asan.xml"
exit $status
