"""The GPU benchmark's pieces that run without a GPU: its artifacts build,
and its PyTorch peers (run here on the CPU) compute the reference layer, so
that a run on a GPU machine compares against correct baselines."""

import numpy as np
import pytest

from moe_mlir import gpu, gpu_bench
from moe_mlir import reference as R

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("name", sorted(gpu_bench.QUICK_LAYERS))
def test_torch_peers_match_reference(name):
    layer = gpu_bench.make_layer(gpu_bench.QUICK_LAYERS[name])
    x, router, weights = gpu_bench.inputs(layer, 37, seed=3)
    want, _ = R.layer_forward(layer, x, router, weights)
    eager, batched = gpu_bench.torch_peers(layer, "cpu")
    args = (gpu_bench.to_torch(x, layer.dtype, "cpu"), gpu_bench.to_torch(router, layer.dtype, "cpu"),
            [gpu_bench.to_torch(w, layer.dtype, "cpu") for w in weights])
    tolerance = {"f32": 1e-4, "bf16": 3e-2}[layer.dtype] * max(1.0, np.abs(want).max())
    for peer in (eager, batched):
        got = peer(*args).float().numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=tolerance)


def test_experts_used_counts_routed_experts():
    layer = gpu_bench.make_layer(gpu_bench.QUICK_LAYERS["quick"])
    x, router, _ = gpu_bench.inputs(layer, 1)
    assert gpu_bench.experts_used(layer, x, router) == layer.policy.top_k


def test_benchmark_artifacts_build(tmp_path):
    try:
        gpu.runtime_library()
    except FileNotFoundError:
        pytest.skip("no CUDA toolkit: the GPU runtime is not built")
    gpu_bench.build(tmp_path, ["sm_90"], quick=True)
    for name in gpu_bench.QUICK_LAYERS:
        assert (tmp_path / f"{gpu_bench.artifact_name(name)}.sm_90.so").exists()
