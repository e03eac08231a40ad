#!/usr/bin/env bash
# Builds moe-mlir and runs every test (lit, then pytest when there are Python
# tests, then bad-data tests again under ASan + UBSan, the lit suite built
# with g++, then a fixed-seed fuzz campaign),
# ending with one line `N passed, N failed`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

results="$MOE_BUILD/test-results"
rm -rf "$results" && mkdir -p "$results"
status=0

echo "== lit"
LIT_OPTS="${LIT_OPTS:-} --xunit-xml-output=$results/lit.xml" \
  cmake --build "$MOE_BUILD" --target check-moe || status=1

# pytest runs one worker per core (MOE_TEST_JOBS overrides; 0 runs in this
# process), a test file per worker: most of its time is compiling layers,
# one core each, which halved the suite's time on 2 cores.
pytest_jobs=(-n "${MOE_TEST_JOBS:-auto}" --dist loadfile)
[ "${MOE_TEST_JOBS:-auto}" != 0 ] || pytest_jobs=()
export MOE_PYTEST_JOBS="${pytest_jobs[*]}"
if compgen -G "$MOE_ROOT/python/tests/test_*.py" >/dev/null; then
  echo "== pytest"
  PYTHONPATH="$MOE_ROOT/python" MOE_BUILD="$MOE_BUILD" \
    /usr/bin/python3 -m pytest -q "${pytest_jobs[@]}" "$MOE_ROOT/python/tests" \
    --junitxml="$results/pytest.xml" || status=1
fi

# The lit suite and the CPU execution tests again, built with ASan + UBSan
# (MOE_SANITIZERS=0 skips them).
asan_build="${MOE_ASAN_BUILD:-$MOE_ROOT/build-asan}"
if [ "${MOE_SANITIZERS:-1}" != 0 ]; then
  echo "== sanitizers"
  MOE_ASAN_BUILD="$asan_build" bash "$MOE_ROOT/tools/check-sanitizers.sh" "$results" || status=1
fi

# The lit suite built with g++ (MOE_GCC=0 skips it): pass output must not
# depend on the host compiler.
if [ "${MOE_GCC:-1}" != 0 ]; then
  echo "== g++ build"
  bash "$MOE_ROOT/tools/check-gcc.sh" "$results" || status=1
fi

# A fixed-seed fuzz campaign of MOE_FUZZ_TIME seconds (0 skips it), against
# the sanitized moe-opt when there is one; one JUnit testcase per oracle class.
fuzz_time="${MOE_FUZZ_TIME:-120}"
if [ "$fuzz_time" != 0 ]; then
  echo "== fuzz (seed 1, $fuzz_time s)"
  fuzz_build="$MOE_BUILD"
  [ -x "$asan_build/bin/moe-opt" ] && [ "${MOE_SANITIZERS:-1}" != 0 ] && fuzz_build="$asan_build"
  PYTHONPATH="$MOE_ROOT/python" /usr/bin/python3 -m moe_mlir.fuzz --seed 1 --time "$fuzz_time" \
    --jobs 2 --build "$fuzz_build" --out "$results/fuzz-out" --junit "$results/fuzz.xml" ||
    status=1
fi

/usr/bin/python3 "$MOE_ROOT/tools/test-summary.py" "$results"/*.xml || status=1
exit $status
