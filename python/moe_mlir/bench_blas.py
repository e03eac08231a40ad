"""The benchmark's GEMM peer at the layer's own sizes: each expert's
contractions as OpenBLAS sgemms (NumPy, the run's threads) on that expert's
routed rows, gathered beforehand. No activation, gather or combine is
timed: it is what a BLAS-based layer spends in its GEMMs alone, at the
row counts routing gives each expert. With few rows per expert (small,
fine-grained) a GEMM runs far below the square sgemm rate the bound uses;
this peer shows how far."""

import numpy as np

from .policies import ExpertChoice, Soft, TokenChoice


def expert_rows(routing, policy, experts):
    """The number of routed rows of each expert (empty slots left out)."""
    if isinstance(policy, TokenChoice) and policy.dropless:
        offsets = np.asarray(routing[2], dtype=np.int64)
        return [int(offsets[e + 1] - offsets[e]) for e in range(experts)]
    ids = np.asarray(routing[0])
    return [int((ids[e] >= 0).sum()) for e in range(experts)]


def blas_experts(layer, x, weights, routing):
    """A callable running every expert's contractions as sgemms on its
    rows, into preallocated outputs; None for Soft MoE (dense slots, no
    routed rows) or a non-f32 layer."""
    if isinstance(layer.policy, Soft) or layer.dtype != "f32":
        return None
    assert isinstance(layer.policy, (TokenChoice, ExpertChoice))
    counts = expert_rows(routing, layer.policy, layer.experts)
    rng = np.random.default_rng(1)
    work = []
    for e, rows in enumerate(counts):
        if rows == 0:
            continue
        # The rows' values do not matter to the time: a gathered copy.
        picked = np.ascontiguousarray(x[rng.integers(0, x.shape[0], rows)])
        ws = [w[e] for w in weights]
        if layer.gated:
            wg, wu, wd = ws
            hidden = [np.empty((rows, wg.shape[1]), np.float32) for _ in range(2)]
            steps = [(picked, wg, hidden[0]), (picked, wu, hidden[1]),
                     (hidden[0], wd, np.empty((rows, wd.shape[1]), np.float32))]
        else:
            w1, w2 = ws
            hidden = np.empty((rows, w1.shape[1]), np.float32)
            steps = [(picked, w1, hidden), (hidden, w2, np.empty((rows, w2.shape[1]), np.float32))]
        work.extend(steps)

    def run():
        for a, b, out in work:
            np.matmul(a, b, out=out)
    return run
