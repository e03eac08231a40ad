#!/usr/bin/env bash
# The main job: install what is missing, build, then parse, verify and print
# the example Mixtral-like MoE layer with moe-opt.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

example="$MOE_ROOT/test/Examples/mixtral-layer.mlir"
echo "== moe-opt $(basename "$example")  (E=8, top-2 dropless, SwiGLU, D=64, H=128)"
start=$(date +%s%N)
"$MOE_BUILD/bin/moe-opt" "$example"
end=$(date +%s%N)
echo "== parsed, verified and printed in $(( (end - start) / 1000000 )) ms"
