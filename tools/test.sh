#!/usr/bin/env bash
# Builds moe-mlir and runs every test (lit, then pytest when there are Python
# tests), ending with one line `N passed, N failed`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

results="$MOE_BUILD/test-results"
rm -rf "$results" && mkdir -p "$results"
status=0

echo "== lit"
LIT_OPTS="${LIT_OPTS:-} --xunit-xml-output=$results/lit.xml" \
  cmake --build "$MOE_BUILD" --target check-moe || status=1

if compgen -G "$MOE_ROOT/python/tests/test_*.py" >/dev/null; then
  echo "== pytest"
  PYTHONPATH="$MOE_ROOT/python" MOE_BUILD="$MOE_BUILD" \
    /usr/bin/python3 -m pytest -q "$MOE_ROOT/python/tests" \
    --junitxml="$results/pytest.xml" || status=1
fi

/usr/bin/python3 "$MOE_ROOT/tools/test-summary.py" "$results"/*.xml || status=1
exit $status
