"""GPU artifacts: built here (they must need nothing but MoECUDARuntime, the
C and math libraries and the driver), and run against the NumPy reference when this
machine has a GPU (otherwise those cases are skipped, not passed)."""

import ctypes
import shutil
import subprocess

import pytest

from layer_cases import LAYERS, check_layer
from moe_mlir import builder, gpu

try:
    RUNTIME = gpu.runtime_library()
except FileNotFoundError:
    RUNTIME = None

needs_toolkit = pytest.mark.skipif(
    RUNTIME is None or shutil.which("ptxas", path="/usr/local/cuda/bin") is None,
    reason="no CUDA toolkit: the GPU runtime and fatbins cannot be built")

# Every routing layout and element type, small enough to build quickly.
GPU_LAYERS = ["mixtral-dropless-swiglu-f32", "capacity-priority-gelu-bf16",
              "deepseek-grouped-swiglu-f32", "expert-choice-swiglu-f32",
              "soft-gelu-f16"]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-artifacts")
    built = {}
    for name in GPU_LAYERS:
        text, sig = builder.build_layer(LAYERS[name], "layer")
        built[name] = gpu.build_artifact(text, sig, out / name, chip="sm_90")
    return built


@needs_toolkit
@pytest.mark.parametrize("name", GPU_LAYERS)
def test_artifact_needs_only_the_runtime(artifacts, name):
    lib = artifacts[name]
    needed = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True,
                            check=True).stdout
    libraries = sorted(line.split("[")[1].rstrip("]") for line in needed.splitlines()
                       if "(NEEDED)" in line)
    assert set(libraries) <= {"libMoECUDARuntime.so", "libc.so.6", "libm.so.6"}, libraries
    assert "libMoECUDARuntime.so" in libraries
    assert "$ORIGIN" in needed
    # The C library's (malloc, free, ceil, ...) carry a version suffix.
    foreign = [s for s in gpu.undefined_symbols(lib)
               if not s.startswith(("mgpu", "_ITM_", "__gmon_start__")) and "@GLIBC" not in s]
    assert foreign == [], f"{lib.name} needs {foreign} from elsewhere"
    assert (lib.parent / gpu.RUNTIME_NAME).exists()
    assert lib.with_suffix(".json").exists()
    # Every mgpu* function the host code calls is one the runtime exports.
    exported = subprocess.run(["nm", "-D", "--defined-only", str(RUNTIME)], capture_output=True,
                              text=True, check=True).stdout.split()
    wanted = [sym for sym in gpu.undefined_symbols(lib) if sym.startswith("mgpu")]
    assert wanted and set(wanted) <= set(exported), set(wanted) - set(exported)


@needs_toolkit
def test_runtime_reports_a_missing_driver():
    runtime = gpu.CudaRuntime(RUNTIME)
    try:
        ctypes.CDLL("libcuda.so.1")
        pytest.skip("this machine has a CUDA driver")
    except OSError:
        pass
    with pytest.raises(gpu.GpuError, match="libcuda.so.1"):
        runtime.init()


def _gpu_runtime():
    if RUNTIME is None:
        return None
    try:
        return gpu.CudaRuntime(RUNTIME).init()
    except gpu.GpuError:
        return None


@needs_toolkit
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", GPU_LAYERS)
def test_layer_on_gpu(artifacts, name, seed):
    runtime = _gpu_runtime()
    if runtime is None:
        pytest.skip("no GPU on this machine (run python/tests/gpu_check.py on one)")
    fn, _ = gpu.load_artifact(artifacts[name].with_suffix(".json"), runtime)
    check_layer(LAYERS[name], fn, seed)
