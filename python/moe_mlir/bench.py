"""Benchmark: the fused CPU path against the reference lowering, PyTorch
eager and a BLAS sgemm of the same FLOPs, side by side in one process.

    PYTHONPATH=python /usr/bin/python3 -m moe_mlir.bench [--quick] [--shapes a,b]
        [--threads N] [--json out.json]

Every number comes from this run; ratios compare figures measured here on the
same inputs and the same thread count (--threads, default 0: every core; the
fused code splits each contraction's columns across OpenMP threads, OpenBLAS
and PyTorch get as many threads).

What makes the comparison honest:

- The machine is described (CPU model, ISA extensions, caches, threads) and
  so is the BLAS kernel the peers really run: OpenBLAS picks its kernels at
  load time from the CPU model, and falls back to a generic SSE3 core
  ("Prescott") on CPUs it does not know. When that happens on an AVX2 or
  AVX-512 CPU the benchmark runs itself again with OPENBLAS_CORETYPE set, so
  that NumPy and PyTorch (which share the library) get their real speed.
- The machine's limits are measured: a BLAS sgemm rate (the practical compute
  peak) and a streaming-read bandwidth over a buffer at least 4x the
  last-level cache. Each shape's bound is the larger of its expert FLOPs at
  the sgemm rate and its active expert weights at the streaming bandwidth;
  every contender's time is reported as the fraction of that bound it reaches.
- The PyTorch peer routes in PyTorch inside its timed region (logits,
  softmax, top-k, renormalize, group per expert), as model code does.
- The routing alone is compiled and timed as its own function.
- Shapes whose active weights fit in the last-level cache are marked: their
  repeated calls read the weights from cache, so the DRAM-bandwidth bound is
  not a limit for them. The big decode shapes have active weights >= 4x the
  LLC, so repeated calls cannot keep them cached.
"""

import argparse
import ctypes
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Optional


def _resolve_threads(value):
    """--threads 0 means every core the OS reports."""
    threads = int(value)
    return threads if threads > 0 else (os.cpu_count() or 1)


def _threads_from_argv(argv):
    for i, arg in enumerate(argv):
        if arg.startswith("--threads="):
            return _resolve_threads(arg.split("=", 1)[1])
        if arg == "--threads" and i + 1 < len(argv):
            return _resolve_threads(argv[i + 1])
    return _resolve_threads(0)


# BLAS fixes its thread count when it loads: set it before NumPy comes in.
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(_threads_from_argv(sys.argv)))
os.environ.setdefault("OMP_NUM_THREADS", os.environ["OPENBLAS_NUM_THREADS"])

import numpy as np  # noqa: E402

from . import builder, packed, runner  # noqa: E402
from . import reference as R  # noqa: E402
from .policies import ExpertChoice, Layer, TokenChoice  # noqa: E402

SHAPES = [
    # name, tokens, D, H, E, policy, activation
    ("small", 128, 512, 1024, 8, TokenChoice(2, normalize=True), "relu"),
    ("mixtral", 2048, 1024, 2048, 8, TokenChoice(2, normalize=True), "swiglu"),
    ("fine-grained", 256, 2048, 704, 64, TokenChoice(6, normalize=True), "swiglu"),
    ("mixtral-ec2", 2048, 1024, 2048, 8, ExpertChoice(2.0), "swiglu"),
    ("mixtral-decode1", 1, 1024, 2048, 8, TokenChoice(2, normalize=True), "swiglu"),
    ("mixtral-decode8", 8, 1024, 2048, 8, TokenChoice(2, normalize=True), "swiglu"),
    ("fine-decode1", 1, 2048, 704, 64, TokenChoice(6, normalize=True), "swiglu"),
    ("fine-decode8", 8, 2048, 704, 64, TokenChoice(6, normalize=True), "swiglu"),
    # Mixtral-8x7B's expert sizes: 2 active experts are 1.4 GB of f32
    # weights, >= 4x a last-level cache of up to 336 MiB, so decode reads
    # its weights from DRAM on every call however often it is repeated.
    ("big-decode1", 1, 4096, 14336, 8, TokenChoice(2, normalize=True), "swiglu"),
    ("big-decode8", 8, 4096, 14336, 8, TokenChoice(2, normalize=True), "swiglu"),
]
QUICK = [("quick", 64, 64, 128, 4, TokenChoice(2, normalize=True), "swiglu")]

# Measured rates of the reference lowering (2-core development VM), to
# estimate its run time: compute-bound prefill, weight-streaming decode.
REFERENCE_GFLOPS = 1.2
REFERENCE_WEIGHTS_GBPS = 0.5
REFERENCE_BUDGET_S = 5.0  # skip the reference lowering where it would take longer

# ISA extensions worth naming for dense f32/bf16/int8 kernels (/proc/cpuinfo
# spellings).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")

# OpenBLAS core names whose SGEMM kernels use AVX-512 / AVX2 (DYNAMIC_ARCH
# builds); anything else on a CPU with those extensions is a fallback.
AVX512_CORES = {"skylakex", "cooperlake", "sapphirerapids"}
AVX2_CORES = AVX512_CORES | {"haswell", "zen", "excavator"}


# ----------------------------------------------------------------------------
# The machine
# ----------------------------------------------------------------------------


def cpu_info():
    """Model name, family/model/stepping numbers and flags of the first CPU
    in /proc/cpuinfo (the benchmark's threads run on identical cores)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # end of the first processor's block
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    flags = set(fields.get("flags", "").split())
    return {
        "model_name": fields.get("model name", "unknown"),
        "vendor": fields.get("vendor_id"),
        "family": int(fields["cpu family"]) if "cpu family" in fields else None,
        "model": int(fields["model"]) if "model" in fields else None,
        "stepping": int(fields["stepping"]) if fields.get("stepping", "").isdigit() else None,
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
        "amx": sorted(flag for flag in flags if flag.startswith("amx")),
        "flags": flags,
    }


def _size_bytes(text):
    """'48K', '2048K', '300M' (sysfs cache sizes) in bytes."""
    text = text.strip()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper())
    return int(text[:-1]) * scale if scale else int(text)


def cache_info():
    """The caches of cpu0 from sysfs: [{level, type, size_bytes}], and the
    last-level cache (highest level holding data)."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    caches = []
    try:
        names = sorted(n for n in os.listdir(base) if n.startswith("index"))
    except OSError:
        names = []
    for name in names:
        try:
            read = lambda leaf: open(os.path.join(base, name, leaf)).read().strip()  # noqa: E731
            caches.append({"level": int(read("level")), "type": read("type"),
                           "size_bytes": _size_bytes(read("size"))})
        except (OSError, ValueError):
            continue
    data = [c for c in caches if c["type"] != "Instruction"]
    llc = max(data, key=lambda c: (c["level"], c["size_bytes"])) if data else None
    return caches, llc


def _mapped_libraries(*needles):
    """Paths of the shared objects mapped into this process whose path
    contains one of `needles` (case-insensitive)."""
    paths = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[5].startswith("/"):
                    path = parts[5]
                    if any(n in path.lower() for n in needles) and path not in paths:
                        paths.append(path)
    except OSError:
        pass
    return paths


def blas_info():
    """The OpenBLAS NumPy loaded (found in /proc/self/maps) and the kernel
    core it picked: {library, corename, config}; library None when NumPy
    runs on another BLAS."""
    candidates = sorted(_mapped_libraries("openblas"),
                        key=lambda p: "openblas" not in os.path.basename(p).lower())
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
            get_corename = lib.openblas_get_corename
        except (OSError, AttributeError):
            continue
        get_corename.restype = ctypes.c_char_p
        info = {"library": path, "corename": get_corename().decode(), "config": None}
        if hasattr(lib, "openblas_get_config"):
            lib.openblas_get_config.restype = ctypes.c_char_p
            info["config"] = lib.openblas_get_config().decode()
        return info
    others = [os.path.basename(p) for p in _mapped_libraries("blas", "mkl", "blis")]
    return {"library": None, "corename": None, "config": None,
            "note": "NumPy does not use OpenBLAS" + (f" ({', '.join(others)})" if others else "")}


def matching_coretype(corename, flags):
    """The OPENBLAS_CORETYPE this CPU deserves when OpenBLAS picked a core
    below its ISA (e.g. Prescott on an AVX-512 CPU), else None."""
    if corename is None:
        return None
    core = corename.lower()
    if {"avx512f", "avx512dq", "avx512bw", "avx512vl"} <= flags:
        return "SkylakeX" if core not in AVX512_CORES else None
    if {"avx2", "fma"} <= flags:
        return "Haswell" if core not in AVX2_CORES else None
    return None


def _isa_level(flags):
    return "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "pre-AVX2"


def rerun_with_matching_blas_core(argv):
    """Re-executes this benchmark with OPENBLAS_CORETYPE set when OpenBLAS
    chose a generic core on a more capable CPU. OpenBLAS reads the variable
    only when it loads, so the whole process must start again; the probe is
    the OpenBLAS this very process loaded (NumPy is imported above). A user's
    own OPENBLAS_CORETYPE is left alone."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return
    cpu, blas = cpu_info(), blas_info()
    want = matching_coretype(blas["corename"], cpu["flags"])
    if want is None:
        return
    print(f"OpenBLAS chose {blas['corename']} on an {_isa_level(cpu['flags'])} CPU; "
          f"rerunning with OPENBLAS_CORETYPE={want}", flush=True)
    env = dict(os.environ, OPENBLAS_CORETYPE=want, MOE_BENCH_BLAS_DEFAULT_CORE=blas["corename"])
    module = __spec__.name if __spec__ is not None else "moe_mlir.bench"
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", module] + list(argv), env)


def machine_info(threads):
    """Everything the JSON's machine record holds, and the notes to print."""
    cpu = cpu_info()
    caches, llc = cache_info()
    blas = blas_info()
    notes = []
    default_core = os.environ.get("MOE_BENCH_BLAS_DEFAULT_CORE")
    forced = os.environ.get("OPENBLAS_CORETYPE")
    blas["coretype_env"] = forced
    blas["default_corename"] = default_core
    if default_core is not None:
        blas["coretype_took"] = blas["corename"] != default_core
        if blas["coretype_took"]:
            notes.append(f"OpenBLAS core is now {blas['corename']} "
                         f"(was {default_core} without OPENBLAS_CORETYPE)")
        else:
            notes.append(f"warning: OPENBLAS_CORETYPE={forced} did not take: OpenBLAS still "
                         f"runs {blas['corename']}; the peers run on a generic kernel")
    want = matching_coretype(blas["corename"], cpu["flags"])
    if want is not None and default_core is None:
        notes.append(f"warning: OpenBLAS runs {blas['corename']} on an {_isa_level(cpu['flags'])} "
                     f"CPU (OPENBLAS_CORETYPE={want} would fix it; `python3 -m moe_mlir.bench` "
                     "does so by itself); the peers are slower than they should be")
    if blas["library"] is None:
        notes.append(blas["note"])
    flags = cpu.pop("flags")
    cpu["isa_level"] = _isa_level(flags)
    return {
        "cpu": cpu,
        "caches": caches,
        "llc_bytes": llc["size_bytes"] if llc else None,
        "llc_level": llc["level"] if llc else None,
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "blas": blas,
    }, notes


def _mib(nbytes):
    return nbytes / (1 << 20)


def _describe_machine(machine):
    cpu = machine["cpu"]
    caches = ", ".join(f"L{c['level']}{c['type'][0].lower() if c['type'] != 'Unified' else ''} "
                       f"{_fmt_bytes(c['size_bytes'])}" for c in machine["caches"])
    blas = machine["blas"]
    core = blas["corename"] or "not OpenBLAS"
    if blas.get("coretype_env"):
        core += f" (OPENBLAS_CORETYPE={blas['coretype_env']})"
    version = (blas["config"] or "").split(" NO_")[0].split(" DYNAMIC")[0]
    return [
        f"machine: {cpu['model_name']} (family {cpu['family']}, model {cpu['model']}, "
        f"stepping {cpu['stepping']}), {machine['cpu_count']} cpu(s), "
        f"{machine['threads']} thread(s) used, BLAS core {blas['corename'] or 'not OpenBLAS'}",
        f"isa: {' '.join(cpu['isa']) or 'none of ' + '/'.join(ISA_FLAGS)}",
        f"caches: {caches or 'unknown'} (LLC {_fmt_bytes(machine['llc_bytes'] or 0)})",
        f"blas: {version or 'BLAS'} core {core}",
    ]


def _fmt_bytes(nbytes):
    if nbytes >= 1 << 30:
        return f"{nbytes / (1 << 30):.1f} GiB"
    if nbytes >= 1 << 20:
        return f"{nbytes / (1 << 20):.0f} MiB"
    return f"{nbytes / (1 << 10):.0f} KiB"


# ----------------------------------------------------------------------------
# The machine's limits
# ----------------------------------------------------------------------------


def best_time(fn, repeats, budget=20.0):
    """Fastest of `repeats` calls (fewer once `budget` seconds are spent)."""
    times = []
    start = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget:
            break
    return min(times)


def expert_flops(layer, rows):
    per_row = 2 * layer.model_dim * layer.hidden_dim * (3 if layer.gated else 2)
    return rows * per_row


def _available_memory():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def streaming_bandwidth(threads, llc_bytes):
    """Read bandwidth over a buffer >= 4x the last-level cache (so no pass
    finds it cached), summed over `threads` equal parts read at once (NumPy's
    reductions release the GIL), so that it compares with layers run on as
    many threads. Two readers are tried and the faster counts: np.add.reduce
    is compute-bound below DRAM speed on some machines (pairwise summation),
    np.maximum.reduce and BLAS sdot are not. Returns (GB/s, details)."""
    from concurrent.futures import ThreadPoolExecutor

    quantum = 256 << 20
    want = max(4 * (llc_bytes or 0), quantum)
    size = -(-want // quantum) * quantum
    available = _available_memory()
    if available is not None:
        size = min(size, max(quantum, available // 4 // quantum * quantum))
    buf = np.ones(size // 4, dtype=np.float32)
    parts = np.array_split(buf, threads)
    readers = {"maximum.reduce": np.maximum.reduce, "sdot": lambda p: np.dot(p, p)}
    rates = {}
    with ThreadPoolExecutor(threads) as pool:
        for name, reader in readers.items():
            best = best_time(lambda: list(pool.map(reader, parts)), 4)
            rates[name] = buf.nbytes / best / 1e9
    del buf, parts
    details = {"buffer_bytes": size, "buffer_x_llc": size / llc_bytes if llc_bytes else None,
               "readers_GBps": rates}
    return max(rates.values()), details


def sgemm_rate(m, k, n):
    a = np.random.default_rng(0).standard_normal((m, k), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((k, n), dtype=np.float32)
    t = best_time(lambda: a @ b, 5)
    return 2.0 * m * k * n / t / 1e9


# ----------------------------------------------------------------------------
# Contenders
# ----------------------------------------------------------------------------


@dataclass
class Contender:
    """One implementation of a shape's layer, bound to its inputs: calling it
    runs the layer once and returns its output. `pack_ms` is the one-off cost
    of preparing the weights outside the timed region (a packed-weights
    variant reports it; None when there is none)."""

    run: Callable[[], np.ndarray]
    pack_ms: Optional[float] = None

    def __call__(self):
        return self.run()


def fused_contenders(layer, text, sig, args, workdir, threads):
    """The compiled contenders of one shape, name -> Contender; "fused" (the
    default moe-cpu-pipeline on `threads` threads) is the one every ratio
    refers to. Further variants (e.g. packed weights) are added here."""
    fused = runner.compile_function(text, sig, os.path.join(workdir, "fused"),
                                    pipeline=runner.cpu_pipeline(threads))
    contenders = {"fused": Contender(lambda: fused(*args))}
    # Weights packed once (moe-pack-expert-weights), then the packed entry.
    layer_packed = packed.compile_packed(text, sig, os.path.join(workdir, "packed"),
                                         threads=threads)
    weights = [args[i] for i in layer_packed.weight_positions]
    rest = [a for i, a in enumerate(args) if i not in layer_packed.weight_positions]
    start = time.perf_counter()
    layer_packed.prepare(*weights)
    pack_ms = (time.perf_counter() - start) * 1e3
    contenders["fused-packed"] = Contender(lambda: layer_packed(*rest), pack_ms=pack_ms)
    return contenders


def compiled_route(layer, workdir, threads):
    """The routing alone, compiled as its own function (builder.build_route)
    with the same pipeline as the layer; None when the builder has none."""
    build_route = getattr(builder, "build_route", None)
    if build_route is None:
        return None
    text, sig = build_route(layer.policy, layer.experts)
    return runner.compile_function(text, sig, os.path.join(workdir, "route"),
                                   pipeline=runner.cpu_pipeline(threads))


def torch_supports(policy):
    """Whether the PyTorch peer routes `policy`: expert choice, and dropless
    token choice without expert groups or score bias."""
    if isinstance(policy, ExpertChoice):
        return True
    return (isinstance(policy, TokenChoice) and policy.dropless and policy.n_group == 1
            and not policy.bias)


def _torch_route(torch, layer, logits):
    """Routing in PyTorch as model code writes it, per the reference
    semantics (see torch_supports): [(token indices, gates)] per expert."""
    policy = layer.policy
    experts = layer.experts
    tokens = logits.shape[0]
    if isinstance(policy, ExpertChoice):
        probs = torch.softmax(logits, dim=1)
        slots = min(R.capacity(policy.capacity_factor, 1, tokens, experts), tokens)
        gates, ids = probs.topk(slots, dim=0)  # [C, E]: every expert's top-C tokens
        if policy.normalize:
            sums = torch.zeros(tokens, dtype=probs.dtype).index_add_(
                0, ids.reshape(-1), gates.reshape(-1))
            picked = sums[ids]
            gates = torch.where(picked > 0, gates / picked, gates)
        return [(ids[:, e], gates[:, e]) for e in range(experts)]
    probs = torch.softmax(logits, dim=1) if policy.score == "softmax" else torch.sigmoid(logits)
    gates, chosen = probs.topk(policy.top_k, dim=1)  # [T, k], best first
    if policy.normalize:
        total = gates.sum(dim=1, keepdim=True)
        gates = torch.where(total > 0, gates / total, gates)
    if policy.routed_scaling_factor != 1.0:
        gates = gates * policy.routed_scaling_factor
    flat = chosen.reshape(-1)
    order = torch.argsort(flat, stable=True)  # rows grouped by expert, tokens in order
    token_of = torch.div(order, policy.top_k, rounding_mode="floor")
    counts = torch.bincount(flat, minlength=experts).tolist()
    return list(zip(token_of.split(counts), gates.reshape(-1)[order].split(counts)))


def torch_layer(layer, x, router, weights, routing=None):
    """A PyTorch eager MoE layer as model code writes it: route in PyTorch
    (logits = x @ router, softmax, top-k, renormalize), then per expert
    index_select its tokens, run the FFN, index_add the gated output. With
    `routing` (the reference's), the routing is taken as given and only the
    experts run. Returns a callable, or None when the policy is not
    implemented here."""
    import torch

    tx, trouter = torch.from_numpy(x), torch.from_numpy(router)
    tw = [torch.from_numpy(w) for w in weights]
    act = {"relu": torch.relu, "gelu": torch.nn.functional.gelu,
           "silu": torch.nn.functional.silu}
    if routing is not None:
        if isinstance(layer.policy, ExpertChoice):
            ids, gates = routing
            given = [(torch.from_numpy(ids[e][ids[e] >= 0].astype(np.int64)),
                      torch.from_numpy(gates[e][ids[e] >= 0])) for e in range(layer.experts)]
        else:
            ids, gates, offsets = routing
            given = [(torch.from_numpy(ids[offsets[e]:offsets[e + 1]].astype(np.int64)),
                      torch.from_numpy(gates[offsets[e]:offsets[e + 1]]))
                     for e in range(layer.experts)]
    elif not torch_supports(layer.policy):
        return None

    def run():
        with torch.no_grad():
            per_expert = given if routing is not None else _torch_route(torch, layer, tx @ trouter)
            out = torch.zeros_like(tx)
            for e, (idx, g) in enumerate(per_expert):
                if idx.numel() == 0:
                    continue
                rows = tx.index_select(0, idx)
                if layer.gated:
                    h = torch.nn.functional.silu(rows @ tw[0][e]) * (rows @ tw[1][e])
                    y = h @ tw[2][e]
                else:
                    y = act[layer.activation](rows @ tw[0][e]) @ tw[1][e]
                out.index_add_(0, idx, y * g[:, None])
            return out.numpy()
    return run


# ----------------------------------------------------------------------------
# One shape
# ----------------------------------------------------------------------------


class _Weights:
    """The last shape's inputs, reused by the next shape of the same sizes
    (the big decode shapes share 5.6 GB of weights; drawing them twice would
    double the run time)."""

    key, weights = None, None

    @classmethod
    def get(cls, layer):
        key = (layer.model_dim, layer.hidden_dim, layer.experts, layer.activation)
        if cls.key != key:
            cls.key, cls.weights = None, None  # free the old ones first
            rng = np.random.default_rng(1)
            weights = []
            for shape in layer.weight_shapes():
                w = rng.standard_normal(shape, dtype=np.float32)
                w *= np.float32(1 / np.sqrt(shape[1]))
                weights.append(w)
            cls.key, cls.weights = key, weights
        return cls.weights


def _routing_stats(layer, routing):
    """(routed rows, experts that got at least one row)."""
    if isinstance(layer.policy, ExpertChoice):
        filled = routing[0] >= 0
        return int(filled.sum()), int(filled.any(axis=1).sum())
    counts = np.diff(routing[2])
    return int(counts.sum()), int((counts > 0).sum())


def _rate(flops, ms):
    return flops / (ms * 1e-3) / 1e9


def run_shape(spec, threads, repeats, llc_bytes, workdir, torch):
    """Measures one shape; returns (entry, ok) where ok is False when the
    fused output differs from the reference. The bounds and the ratios to
    the machine's limits are added afterwards (add_bounds), once the limits
    have been measured at both ends of the run."""
    name, tokens, d, h, e, policy, activation = spec
    layer = Layer(d, h, e, policy, activation, "f32")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((tokens, d), dtype=np.float32)
    router = (rng.standard_normal((d, e), dtype=np.float32) / np.float32(np.sqrt(d)))
    weights = _Weights.get(layer)
    args = [x, router] + weights
    want, routing = R.layer_forward(layer, x, router, weights)
    scale = max(1.0, float(np.abs(want).max()))

    rows, active = _routing_stats(layer, routing)
    flops = expert_flops(layer, rows)
    per_expert = sum(int(np.prod(s[1:])) for s in layer.weight_shapes()) * 4
    active_bytes = active * per_expert
    fits = llc_bytes is not None and active_bytes <= llc_bytes
    entry = {
        "shape": name, "tokens": tokens, "D": d, "H": h, "E": e,
        "policy": builder.policy_attr(policy), "activation": activation,
        "routed_rows": rows, "expert_flops": flops, "active_experts": active,
        "weight_bytes_per_expert": per_expert, "active_weight_bytes": active_bytes,
        "total_weight_bytes": e * per_expert, "fits_llc": fits,
        "cache_note": ("active weights fit in the LLC: repeated calls read them from cache, "
                       "so the DRAM-bandwidth bound is not a limit here" if fits else
                       "active weights exceed the LLC: every repeated call streams them "
                       "from DRAM"),
    }

    shape_dir = os.path.join(workdir, name)
    text, sig = builder.build_layer(layer)
    contenders = {}
    ok = True
    for cname, contender in fused_contenders(layer, text, sig, args, shape_dir, threads).items():
        err = float(np.abs(contender() - want).max())
        ms = best_time(contender, repeats) * 1e3
        contenders[cname] = {"ms": ms, "GFLOPs": _rate(flops, ms), "max_abs_error": err,
                             "pack_ms": contender.pack_ms}
        if not np.isfinite(err) or err > 1e-3 * scale:
            print(f"  error: {cname} output differs from the reference by {err}", file=sys.stderr)
            ok = False
    fused = contenders["fused"]
    entry.update({"contenders": contenders, "max_abs_error": fused["max_abs_error"],
                  "fused_ms": fused["ms"], "fused_GFLOPs": fused["GFLOPs"],
                  "pack_ms": fused["pack_ms"],
                  "weights_GBps": active_bytes / (fused["ms"] * 1e-3) / 1e9})

    route = compiled_route(layer, shape_dir, threads)
    if route is None:
        entry["route_note"] = "builder has no build_route: routing not timed apart"
    else:
        logits = R.matmul_seq(x, router)
        got = route(logits)
        entry["route_matches_reference"] = all(np.array_equal(a, b) for a, b in zip(got, routing))
        entry["route_ms"] = best_time(lambda: route(logits), max(repeats, 5)) * 1e3
        entry["route_pct_of_fused"] = 100.0 * entry["route_ms"] / fused["ms"]
        # One entry call routing a single token: the floor of what a call
        # costs from Python (binding, descriptors, result copies), which the
        # fused layer's call pays too.
        one = np.ascontiguousarray(logits[:1])
        entry["route_call_floor_ms"] = best_time(lambda: route(one), max(repeats, 5)) * 1e3

    estimate = max(flops / (REFERENCE_GFLOPS * 1e9), active_bytes / (REFERENCE_WEIGHTS_GBPS * 1e9))
    if estimate < REFERENCE_BUDGET_S:
        ref = runner.compile_function(
            text, sig, os.path.join(shape_dir, "ref"),
            pipeline="moe-cpu-pipeline{fused=false results-to-out-params=false}")
        entry["reference_ms"] = best_time(lambda: ref(*args), 1) * 1e3

    if torch is not None:
        run = torch_layer(layer, x, router, weights)
        if run is None:
            entry["torch_note"] = "policy not implemented in the PyTorch peer"
        else:
            entry["torch_max_abs_error"] = float(np.abs(run() - want).max())
            entry["torch_ms"] = best_time(run, repeats) * 1e3
            entry["torch_GFLOPs"] = _rate(flops, entry["torch_ms"])
            experts_only = torch_layer(layer, x, router, weights, routing)
            experts_only()
            entry["torch_experts_only_ms"] = best_time(experts_only, repeats) * 1e3
    return entry, ok


def add_bounds(entry, peak, bandwidth):
    """The shape's bound, max(expert FLOPs / sgemm rate, active weight bytes
    / streaming bandwidth), and each contender's ratios to the limits."""
    compute_ms = entry["expert_flops"] / (peak * 1e9) * 1e3
    memory_ms = entry["active_weight_bytes"] / (bandwidth * 1e9) * 1e3
    bound_ms = max(compute_ms, memory_ms)
    entry.update({"compute_bound_ms": compute_ms, "memory_bound_ms": memory_ms,
                  "bound_ms": bound_ms,
                  "bound_kind": "compute" if compute_ms >= memory_ms else "memory"})
    for c in entry["contenders"].values():
        c["x_blas"] = c["GFLOPs"] / peak
        c["frac_bound"] = bound_ms / c["ms"]
    entry["fused_x_blas"] = entry["contenders"]["fused"]["x_blas"]
    entry["fused_frac_bound"] = entry["contenders"]["fused"]["frac_bound"]
    if "torch_ms" in entry:
        entry["torch_frac_bound"] = bound_ms / entry["torch_ms"]


def measure_limits(threads, llc_bytes, quick):
    """(sgemm GFLOP/s, streaming GB/s, streaming details) measured now."""
    bandwidth, stream = streaming_bandwidth(threads, llc_bytes)
    peak = sgemm_rate(256, 256, 256) if quick else sgemm_rate(2048, 1024, 2048)
    return peak, bandwidth, stream


# ----------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------


def _cell(value, fmt, width):
    return format(value, fmt) if value is not None else "-".rjust(width)


TIMES_HEADER = (f"{'shape':16} {'fused ms':>9} {'GFLOP/s':>8} {'xBLAS':>6} {'torch ms':>9} "
                f"{'x torch':>8} {'torch err':>9} {'ref ms':>9} {'x ref':>7} {'route ms':>9} "
                f"{'route %':>7}")
BOUNDS_HEADER = (f"{'shape':16} {'GFLOP':>8} {'active MiB':>10} {'fits LLC':>8} "
                 f"{'compute ms':>10} {'memory ms':>9} {'bound ms':>9} {'fused/bound':>11} "
                 f"{'torch/bound':>11} {'weights GB/s':>12}")


def times_row(entry):
    fused_ms = entry["fused_ms"]
    torch_ms, ref_ms = entry.get("torch_ms"), entry.get("reference_ms")
    lines = [f"{entry['shape']:16} {fused_ms:9.3f} {entry['fused_GFLOPs']:8.1f} "
             f"{entry['fused_x_blas']:6.2f} {_cell(torch_ms, '9.3f', 9)} "
             f"{_cell(torch_ms and torch_ms / fused_ms, '8.2f', 8)} "
             f"{_cell(entry.get('torch_max_abs_error'), '9.1e', 9)} "
             f"{_cell(ref_ms, '9.1f', 9)} {_cell(ref_ms and ref_ms / fused_ms, '7.1f', 7)} "
             f"{_cell(entry.get('route_ms'), '9.3f', 9)} "
             f"{_cell(entry.get('route_pct_of_fused'), '7.1f', 7)}"]
    for name, c in entry["contenders"].items():
        if name != "fused":
            pack = f", pack {c['pack_ms']:.1f} ms" if c["pack_ms"] is not None else ""
            lines.append(f"  {name:14} {c['ms']:9.3f} {c['GFLOPs']:8.1f} {c['x_blas']:6.2f} "
                         f"({c['frac_bound']:.0%} of bound{pack})")
    return "\n".join(lines)


def bounds_row(entry):
    return (f"{entry['shape']:16} {entry['expert_flops'] / 1e9:8.3f} "
            f"{_mib(entry['active_weight_bytes']):10.1f} "
            f"{'yes' if entry['fits_llc'] else 'no':>8} {entry['compute_bound_ms']:10.3f} "
            f"{entry['memory_bound_ms']:9.3f} {entry['bound_ms']:9.3f} "
            f"{entry['fused_frac_bound']:11.0%} "
            f"{_cell(entry.get('torch_frac_bound'), '11.0%', 11)} "
            f"{entry['weights_GBps']:12.1f}")


# ----------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------


def _select_shapes(args):
    if args.shapes:
        known = {s[0]: s for s in SHAPES + QUICK}
        names = [n.strip() for n in args.shapes.split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SystemExit(f"unknown shape(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return [known[n] for n in names]
    return QUICK if args.quick else SHAPES


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one tiny shape (a smoke run)")
    parser.add_argument("--shapes", help="comma-separated shape names to run (default: all)")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads for every contender (0: every core)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default="moe-bench.json")
    args = parser.parse_args(argv)
    threads = _resolve_threads(args.threads)
    shapes = _select_shapes(args)
    if os.environ["OPENBLAS_NUM_THREADS"] != str(threads):
        print(f"warning: OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']} "
              f"(fixed when NumPy loaded), not {threads}", file=sys.stderr)
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        torch = None

    machine, notes = machine_info(threads)
    # Other processes on the cores slow every contender down unevenly; the
    # record says how busy the machine was.
    machine["loadavg_start"] = os.getloadavg()[0]
    if machine["loadavg_start"] > 0.5:
        notes.append(f"warning: load average {machine['loadavg_start']:.2f} at the start: other "
                     "processes compete for the cores, so the times are pessimistic")
    if torch is not None:
        machine["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads(),
                            "blas_libraries": _mapped_libraries("openblas", "mkl", "blis")}
    for line in _describe_machine(machine) + notes:
        print(line, flush=True)
    # The limits are measured before and after the shapes and the higher
    # figure counts: on a shared machine one measurement can land on a busy
    # moment, and a bound from it would flatter every contender.
    limits = [measure_limits(threads, machine["llc_bytes"], args.quick)]
    workdir = tempfile.mkdtemp(prefix="moe-bench-")
    status = 0
    results = {"threads": threads, "machine": machine, "notes": notes, "shapes": []}
    for i, spec in enumerate(shapes):
        print(f"[{i + 1}/{len(shapes)}] {spec[0]}", file=sys.stderr, flush=True)
        entry, ok = run_shape(spec, threads, args.repeats, machine["llc_bytes"], workdir, torch)
        results["shapes"].append(entry)
        if not ok:
            status = 1
            break
    limits.append(measure_limits(threads, machine["llc_bytes"], args.quick))
    peak = max(p for p, _, _ in limits)
    bandwidth = max(b for _, b, _ in limits)
    stream = max(limits, key=lambda lim: lim[1])[2]
    machine.update({"stream_read_GBps": bandwidth, "stream": stream, "blas_sgemm_GFLOPs": peak,
                    "limits_start_end": [{"blas_sgemm_GFLOPs": p, "stream_read_GBps": b}
                                         for p, b, _ in limits]})
    results.update({"stream_read_GBps": bandwidth, "blas_sgemm_GFLOPs": peak})
    for entry in results["shapes"]:
        add_bounds(entry, peak, bandwidth)

    print(f"limits: BLAS sgemm {peak:.1f} GFLOP/s, streaming read {bandwidth:.1f} GB/s "
          f"({_fmt_bytes(stream['buffer_bytes'])} buffer, "
          f"{stream['buffer_x_llc'] or float('nan'):.1f}x LLC, {threads} thread(s)); "
          "best of start/end: "
          + ", ".join(f"{p:.0f}/{b:.1f}" for p, b, _ in limits))
    print()
    print(TIMES_HEADER)
    for entry in results["shapes"]:
        print(times_row(entry))
    print()
    print(BOUNDS_HEADER)
    for entry in results["shapes"]:
        print(bounds_row(entry))
    print("bound = max(expert FLOPs / sgemm rate, active weight bytes / streaming bandwidth); "
          "x/bound = bound ms / contender ms.")
    if any(entry["fits_llc"] for entry in results["shapes"]):
        print("fits LLC = yes: the active weights stay cached across repeated calls, so the "
              "memory bound (DRAM) does not bind and x/bound may pass 100 %.")
    floors = [e["route_call_floor_ms"] for e in results["shapes"] if "route_call_floor_ms" in e]
    if floors:
        print(f"route ms: the routing compiled alone, one call from Python (a 1-token call "
              f"takes {min(floors):.3f}-{max(floors):.3f} ms: that much is call overhead).")
    skipped = [e["shape"] for e in results["shapes"] if "route_note" in e]
    if skipped:
        print(f"routing not timed apart ({', '.join(skipped)}): builder has no build_route")
    results["loadavg_end"] = os.getloadavg()[0]
    print(f"load average {machine['loadavg_start']:.2f} at the start, "
          f"{results['loadavg_end']:.2f} at the end ({machine['cpu_count']} cpu(s))")
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.json}")
    return status


if __name__ == "__main__":
    rerun_with_matching_blas_core(sys.argv[1:])
    sys.exit(main())
