"""GPU benchmark: moe-gpu-pipeline artifacts against PyTorch on the GPU.

    PYTHONPATH=python /usr/bin/python3 -m moe_mlir.gpu_bench build DIR [--chip sm_90] [--quick]
    PYTHONPATH=python python3 -m moe_mlir.gpu_bench run DIR [--json out.json] [--quick]

`build` runs here (this project's build and a CUDA toolkit): one artifact per
layer configuration, dynamic T. `run` runs on the GPU machine with Python 3,
NumPy, PyTorch (CUDA) and the driver: for each case it times, on the same
inputs already on the device, the compiled layer (routing, dispatch, experts,
combine), a PyTorch eager layer as model code writes it (per expert:
index_select, FFN, index_add) and a batched PyTorch layer (tokens grouped
per expert, padded, torch.bmm). It prints ms, TFLOP/s of expert FFN work,
GB/s of expert weights actually read (decode) and the ratios, all from one
run, and writes them as JSON. A line per case also gives the largest
difference between the compiled and the eager output.

Shapes: the CPU benchmark's (small, Mixtral-like, fine-grained, expert
choice, decode T = 1 and 8 in f32) plus Mixtral-like sizes in bf16 for decode
T = 1 ... 64 and prefill T = 4096.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import gpu
from . import reference as R
from .policies import ExpertChoice, Layer, TokenChoice

TC2 = TokenChoice(2, normalize=True)
TC6 = TokenChoice(6, normalize=True)

# name: (D, H, E, policy, activation, dtype)
LAYERS = {
    "small": (512, 1024, 8, TC2, "relu", "f32"),
    "mixtral": (1024, 2048, 8, TC2, "swiglu", "f32"),
    "fine-grained": (2048, 704, 64, TC6, "swiglu", "f32"),
    "mixtral-ec2": (1024, 2048, 8, ExpertChoice(2.0), "swiglu", "f32"),
    "mixtral-bf16": (4096, 14336, 8, TC2, "swiglu", "bf16"),
}
CASES = ([("small", 128), ("mixtral", 2048), ("fine-grained", 256), ("mixtral-ec2", 2048),
          ("mixtral", 1), ("mixtral", 8), ("fine-grained", 1), ("fine-grained", 8)]
         + [("mixtral-bf16", t) for t in (1, 2, 4, 8, 16, 32, 64, 4096)])
QUICK_LAYERS = {"quick": (64, 128, 4, TC2, "swiglu", "f32"),
                "quick-ec": (64, 128, 4, ExpertChoice(2.0), "swiglu", "f32"),
                "quick-bf16": (64, 128, 4, TC2, "swiglu", "bf16")}
QUICK_CASES = [("quick", 1), ("quick", 64), ("quick-ec", 64), ("quick-bf16", 16)]


def make_layer(spec):
    d, h, e, policy, activation, dtype = spec
    return Layer(d, h, e, policy, activation, dtype)


def artifact_name(name):
    return "bench_" + name.replace("-", "_")


def build(out_dir, chips, quick):
    from . import builder

    layers = QUICK_LAYERS if quick else LAYERS
    for name, spec in layers.items():
        text, sig = builder.build_layer(make_layer(spec), artifact_name(name))
        for chip in chips:
            lib = gpu.build_artifact(text, sig, out_dir, chip=chip)
            print(f"built {lib.name}")


def expert_rows(layer, tokens):
    if isinstance(layer.policy, ExpertChoice):
        return layer.experts * R.capacity(layer.policy.capacity_factor, 1, tokens, layer.experts)
    return tokens * layer.policy.top_k


def expert_flops(layer, rows):
    return rows * 2 * layer.model_dim * layer.hidden_dim * (3 if layer.gated else 2)


def experts_used(layer, x, router):
    """Experts that receive at least one token (from the reference routing)."""
    if x.shape[0] == 0:
        return 0
    if isinstance(layer.policy, ExpertChoice):
        return layer.experts
    routing = R.route(R.matmul_seq(x, router), layer.policy, layer.experts)
    return int(np.count_nonzero(np.diff(routing[2])))


def inputs(layer, tokens, seed=0):
    """f32 arrays holding values of the layer's dtype."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((tokens, layer.model_dim)).astype(np.float32)
    router = (rng.standard_normal((layer.model_dim, layer.experts))
              / np.sqrt(layer.model_dim)).astype(np.float32)
    weights = [(rng.standard_normal(s) / np.sqrt(s[1])).astype(np.float32)
               for s in layer.weight_shapes()]
    rounded = [R.round_to(a, layer.dtype) for a in [x, router] + weights]
    return rounded[0], rounded[1], rounded[2:]


# ---------------------------------------------------------------- PyTorch --

def torch_peers(layer, device):
    """(eager, batched) PyTorch layers: f(x, router, weights) -> output."""
    import torch
    import torch.nn.functional as F

    act = {"relu": torch.relu, "gelu": F.gelu, "silu": F.silu}

    def ffn(rows, w, e):
        if layer.gated:
            return (F.silu(rows @ w[0][e]) * (rows @ w[1][e])) @ w[2][e]
        return act[layer.activation](rows @ w[0][e]) @ w[1][e]

    def bffn(rows, w):
        if layer.gated:
            return torch.bmm(F.silu(torch.bmm(rows, w[0])) * torch.bmm(rows, w[1]), w[2])
        return torch.bmm(act[layer.activation](torch.bmm(rows, w[0])), w[1])

    def route(x, router):
        """Per expert: token ids and gates, as model code computes them."""
        probs = torch.softmax((x @ router).float(), dim=-1)
        tokens = x.shape[0]
        if isinstance(layer.policy, ExpertChoice):
            c = R.capacity(layer.policy.capacity_factor, 1, tokens, layer.experts)
            gates, ids = torch.topk(probs.t(), min(c, tokens), dim=-1)  # [E, C]
            return ids, gates
        k = layer.policy.top_k
        gates, chosen = torch.topk(probs, k, dim=-1)
        if layer.policy.normalize:
            gates = gates / gates.sum(dim=-1, keepdim=True)
        return chosen, gates  # [T, k]

    def eager(x, router, w):
        with torch.no_grad():
            out = torch.zeros_like(x)
            ids, gates = route(x, router)
            for e in range(layer.experts):
                if isinstance(layer.policy, ExpertChoice):
                    idx, g = ids[e], gates[e]
                else:
                    token, slot = torch.where(ids == e)
                    idx, g = token, gates[token, slot]
                if idx.numel() == 0:
                    continue
                y = ffn(x.index_select(0, idx), w, e)
                out.index_add_(0, idx, (y.float() * g[:, None]).to(x.dtype))
            return out

    def batched(x, router, w):
        with torch.no_grad():
            tokens, d = x.shape
            ids, gates = route(x, router)
            if isinstance(layer.policy, ExpertChoice):
                idx, g = ids, gates                                   # [E, C]
            else:
                flat = ids.flatten()
                order = torch.argsort(flat, stable=True)
                counts = torch.bincount(flat, minlength=layer.experts)
                width = int(counts.max().item())
                starts = torch.cumsum(counts, 0) - counts
                rank = torch.arange(flat.numel(), device=x.device) - starts[flat[order]]
                idx = torch.full((layer.experts, width), tokens, device=x.device)
                g = torch.zeros((layer.experts, width), device=x.device)
                idx[flat[order], rank] = order // ids.shape[1]
                g[flat[order], rank] = gates.flatten()[order]
            padded = torch.cat([x, torch.zeros(1, d, dtype=x.dtype, device=x.device)])
            y = bffn(padded[idx], w)                                  # [E, C, D]
            out = torch.zeros(tokens + 1, d, dtype=torch.float32, device=x.device)
            out.index_add_(0, idx.flatten(), (y.float() * g[..., None]).flatten(0, 1))
            return out[:tokens].to(x.dtype)

    return eager, batched


def to_torch(array, dtype, device):
    import torch

    if dtype == "bf16":
        bits = R.to_bf16_bits(array).view(np.int16)
        return torch.from_numpy(bits.copy()).view(torch.bfloat16).to(device)
    if dtype == "f16":
        return torch.from_numpy(array.astype(np.float16)).to(device)
    return torch.from_numpy(array).to(device)


# ----------------------------------------------------------------- running --

def run(out_dir, json_path, quick, repeat):
    import torch

    out_dir = Path(out_dir)
    runtime = gpu.CudaRuntime(out_dir / gpu.RUNTIME_NAME).init()
    device_name, capability = runtime.device()
    layers = QUICK_LAYERS if quick else LAYERS
    cases = QUICK_CASES if quick else CASES
    chips = sorted({p.name.split(".")[1] for p in out_dir.glob("bench_*.json")})
    usable = [c for c in chips if int(c[3:].rstrip("a")) <= capability]
    if not usable:
        raise SystemExit(f"no artifact in {out_dir} for sm_{capability} (have {chips})")
    chip = max(usable, key=lambda c: int(c[3:].rstrip("a")))
    print(f"device: {device_name} (sm_{capability}), artifacts for {chip}, torch "
          f"{torch.__version__}")
    print(f"{'case':22} {'ours ms':>9} {'TFLOP/s':>8} {'eager ms':>9} {'bmm ms':>9} "
          f"{'x eager':>8} {'x bmm':>7} {'weights GB/s':>12} {'max diff':>9}")
    results = []
    functions = {}
    for name, tokens in cases:
        layer = make_layer(layers[name])
        if name not in functions:
            functions[name], _ = gpu.load_artifact(
                out_dir / f"{artifact_name(name)}.{chip}.json", runtime)
        fn = functions[name]
        x, router, weights = inputs(layer, tokens)
        native = [R.to_bf16_bits(a) if layer.dtype == "bf16" else a.astype(
            np.float16 if layer.dtype == "f16" else np.float32) for a in [x, router] + weights]
        device = [gpu.DeviceArray.from_numpy(runtime, a) for a in native]

        def ours():
            fn(*device, keep_on_device=True).free()

        ours_ms = runtime.time_ms(ours, repeat=repeat)[0]
        got = fn(*device)
        got = R.from_bf16_bits(got) if layer.dtype == "bf16" else got.astype(np.float32)
        for d in device:
            d.free()

        eager, batched = torch_peers(layer, "cuda")
        tx, trouter = to_torch(x, layer.dtype, "cuda"), to_torch(router, layer.dtype, "cuda")
        tw = [to_torch(w, layer.dtype, "cuda") for w in weights]

        def timed(f):
            for _ in range(2):
                f(tx, trouter, tw)
            torch.cuda.synchronize()
            best = float("inf")
            for _ in range(repeat):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                    enable_timing=True)
                start.record()
                f(tx, trouter, tw)
                end.record()
                torch.cuda.synchronize()
                best = min(best, start.elapsed_time(end))
            return best

        eager_ms, bmm_ms = timed(eager), timed(batched)
        want = eager(tx, trouter, tw).float().cpu().numpy()
        diff = float(np.abs(got - want).max(initial=0.0))
        rows = expert_rows(layer, tokens)
        tflops = expert_flops(layer, rows) / (ours_ms * 1e-3) / 1e12
        # Decode: bytes of the experts the routing actually used.
        used = experts_used(layer, x, router)
        per_expert = sum(w[0].nbytes for w in weights) * (0.5 if layer.dtype != "f32" else 1)
        gbs = used * per_expert / (ours_ms * 1e-3) / 1e9
        row = {"case": f"{name} T={tokens}", "dtype": layer.dtype, "tokens": tokens,
               "ours_ms": ours_ms, "tflops": tflops, "eager_ms": eager_ms, "bmm_ms": bmm_ms,
               "x_eager": eager_ms / ours_ms, "x_bmm": bmm_ms / ours_ms,
               "weights_gbs": gbs, "max_diff_vs_eager": diff}
        results.append(row)
        print(f"{row['case']:22} {ours_ms:9.3f} {tflops:8.2f} {eager_ms:9.3f} {bmm_ms:9.3f} "
              f"{row['x_eager']:8.2f} {row['x_bmm']:7.2f} {gbs:12.1f} {diff:9.2e}")
    if json_path:
        Path(json_path).write_text(json.dumps({"device": device_name, "capability": capability,
                                               "chip": chip, "results": results}, indent=1))
        print(f"wrote {json_path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("dir")
    b.add_argument("--chip", action="append")
    b.add_argument("--quick", action="store_true")
    r = sub.add_parser("run")
    r.add_argument("dir")
    r.add_argument("--json")
    r.add_argument("--quick", action="store_true")
    r.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.dir, args.chip or ["sm_90"], args.quick)
    else:
        run(args.dir, args.json, args.quick, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
