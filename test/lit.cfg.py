# -*- Python -*-
# lit configuration of the moe-mlir test suite (`check-moe`).

import os
import shutil
import subprocess

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "MOE"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.moe_obj_root, "test")
config.excludes = ["CMakeLists.txt", "README.txt", "lit.cfg.py", "lit.site.cfg.py"]

# Captures in CHECK lines do not leak from one CHECK-LABEL block to the next.
config.environment["FILECHECK_OPTS"] = "-enable-var-scope --dump-input=fail"

# A MOE_ENABLE_SANITIZERS build: every process of a test preloads the shared
# ASan runtime, so that uninstrumented hosts (Debian's mlir-opt with our
# plugin, Python with our C API) can load our instrumented shared objects.
# Leaks are not reported (Python and the LLVM tools leak by design), nor
# manual poisoning (see tools/sanitizer-defaults.c); any
# other report aborts the process, so the test fails.
if config.moe_sanitizer_runtime:
    config.environment["LD_PRELOAD"] = config.moe_sanitizer_runtime
    config.environment["ASAN_OPTIONS"] = "detect_leaks=0:allow_user_poisoning=0"
    config.environment["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    config.environment["ASAN_SYMBOLIZER_PATH"] = os.path.join(config.llvm_tools_dir,
                                                              "llvm-symbolizer")
    config.available_features.add("sanitizers")

llvm_config.use_default_substitutions()
llvm_config.with_system_environment(["HOME", "TMP", "TEMP"])
# `not`, `count` and friends come from the same LLVM as FileCheck.
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.moe_tools_dir, append_path=True)

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%shlibext", config.llvm_shlib_ext))
config.substitutions.append(("%moe_src_root", config.moe_src_root))
config.substitutions.append(("%moe_obj_root", config.moe_obj_root))
# Where libMoECAPI.so and MoEPlugin.so are built.
config.substitutions.append(("%moe_libs", os.path.join(config.moe_obj_root, "lib")))
# Debian's interpreter, pinned at configure time (never whatever is on PATH).
config.substitutions.append(("%python", config.python_executable))
config.substitutions.append(
    ("%mlir_runner_utils",
     os.path.join(config.llvm_lib_dir, "libmlir_runner_utils" + config.llvm_shlib_ext)))
# moe-cpu-pipeline runs on every core by default (OpenMP).
config.substitutions.append(
    ("%libomp", os.path.join(config.llvm_lib_dir, "libomp" + config.llvm_shlib_ext)))
config.substitutions.append(
    ("%mlir_c_runner_utils",
     os.path.join(config.llvm_lib_dir, "libmlir_c_runner_utils" + config.llvm_shlib_ext)))

# Our tools first, then the LLVM/MLIR ones of the same installation.
tool_dirs = [config.moe_tools_dir, config.llvm_tools_dir]
tools = [
    "moe-opt",
    "moe-lsp-server",
    "mlir-opt",
    "mlir-runner",
    "mlir-translate",
    ToolSubst("%ptxas", config.moe_ptxas or "ptxas", unresolved="ignore"),
]
llvm_config.add_tool_substitutions(tools, tool_dirs)

# The project's mgpu* runtime, for moe-gpu-pipeline output under mlir-runner.
config.substitutions.append(
    ("%moe_cuda_runtime",
     os.path.join(config.moe_obj_root, "lib", "libMoECUDARuntime" + config.llvm_shlib_ext)))

# Features: what this machine can check.
if config.moe_has_nvptx_target:
    config.available_features.add("nvptx-registered-target")
if config.moe_ptxas and os.access(config.moe_ptxas, os.X_OK):
    config.available_features.add("ptxas")


def _gpu_answers():
    """Whether an NVIDIA GPU is present and responds."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and b"GPU" in out.stdout


if config.moe_enable_capi:
    config.available_features.add("moe-capi")
if config.moe_enable_cuda_runtime:
    config.available_features.add("cuda-runtime")
if config.moe_enable_cuda_runtime and _gpu_answers():
    config.available_features.add("cuda-runner")
