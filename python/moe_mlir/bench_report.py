"""The benchmark's report: each shape's bound from the machine's measured
limits, and the two tables moe_mlir.bench prints (times and ratios; bounds)."""

from .bench_machine import fmt_bytes, mib


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
        # The contender's own weight bytes (bf16 panels: half) per second,
        # against the streaming bandwidth.
        c["weights_GBps"] = c["weight_bytes"] / (c["ms"] * 1e-3) / 1e9
        c["weights_x_stream"] = c["weights_GBps"] / bandwidth
    entry["fused_x_blas"] = entry["contenders"]["fused"]["x_blas"]
    entry["fused_frac_bound"] = entry["contenders"]["fused"]["frac_bound"]
    if "torch_ms" in entry:
        entry["torch_frac_bound"] = bound_ms / entry["torch_ms"]
    if "blas_experts_ms" in entry:
        entry["blas_experts_frac_bound"] = bound_ms / entry["blas_experts_ms"]


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
                 f"{'torch/bound':>11} {'weights GB/s':>12} {'sgemms ms':>9} {'sgemms/bound':>12}")


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
            gemms = entry.get("blas_experts_ms")
            versus = f", {gemms / c['ms']:.2f}x sgemms" if gemms else ""
            stream = (f", weights {c['weights_GBps']:.1f} GB/s = {c['weights_x_stream']:.0%} "
                      "of stream" if not entry["fits_llc"] else "")
            lines.append(f"  {name:17} {c['ms']:9.3f} {c['GFLOPs']:8.1f} {c['x_blas']:6.2f} "
                         f"({c['frac_bound']:.0%} of bound{versus}{stream}{pack})")
    peers = [("torch-int8", "fused-packed-i8",
              lambda: f"quantize_dynamic per-channel w8a8, {entry['torch_int8_engine']}",
              "quantize"),
             ("torch-bf16", "fused-packed-bf16", lambda: "bf16 weights and rows", "convert")]
    for name, ours, what, setup in peers:
        key = name.replace("-", "_")
        if f"{key}_ms" not in entry:
            continue
        ms, mine = entry[f"{key}_ms"], entry["contenders"].get(ours)
        versus = f", {ours} {ms / mine['ms']:.2f}x faster" if mine else ""
        lines.append(f"  {name:17} {ms:9.3f} {entry['expert_flops'] / ms / 1e6:8.1f} "
                     f"{'':6} ({what()}, err {entry[f'{key}_max_abs_error']:.1e}{versus}, "
                     f"{setup} {entry[f'{key}_{setup}_ms']:.1f} ms)")
    return "\n".join(lines)


def bounds_row(entry):
    return (f"{entry['shape']:16} {entry['expert_flops'] / 1e9:8.3f} "
            f"{mib(entry['active_weight_bytes']):10.1f} "
            f"{'yes' if entry['fits_llc'] else 'no':>8} {entry['compute_bound_ms']:10.3f} "
            f"{entry['memory_bound_ms']:9.3f} {entry['bound_ms']:9.3f} "
            f"{entry['fused_frac_bound']:11.0%} "
            f"{_cell(entry.get('torch_frac_bound'), '11.0%', 11)} "
            f"{entry['weights_GBps']:12.1f} {_cell(entry.get('blas_experts_ms'), '9.3f', 9)} "
            f"{_cell(entry.get('blas_experts_frac_bound'), '12.0%', 12)}")


def print_report(results, limits):
    """Prints the limits measured at the start and end of the run (`limits`:
    (sgemm GFLOP/s, streaming GB/s, streaming details) each), then the
    tables of `results`' shapes, whose bounds add_bounds has set."""
    threads, peak = results["threads"], results["blas_sgemm_GFLOPs"]
    bandwidth, stream = results["stream_read_GBps"], results["machine"]["stream"]
    print(f"limits: BLAS sgemm {peak:.1f} GFLOP/s, streaming read {bandwidth:.1f} GB/s "
          f"({fmt_bytes(stream['buffer_bytes'])} buffer, "
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
    if any("blas_experts_ms" in entry for entry in results["shapes"]):
        print("sgemms: each expert's contractions alone as BLAS sgemms on its routed rows "
              "(gathered beforehand; no activation, gather or combine): the GEMM time of a "
              "BLAS-based layer at this shape's row counts.")
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
