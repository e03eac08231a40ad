#!/usr/bin/env bash
# The main job: install what is missing, build, then compile a Mixtral-like
# MoE layer (E=8, top-2, SwiGLU) for the CPU, run it on random inputs, check
# it against the NumPy reference and print the error and the time per call.
# Extra arguments go to the demo (e.g. --tokens 512 --dtype bf16).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

PYTHONPATH="$MOE_ROOT/python" MOE_BUILD="$MOE_BUILD" \
  /usr/bin/python3 -m moe_mlir.demo "$@"
