"""The benchmark's view of the machine: CPU model, ISA, caches and the BLAS
kernel the peers run (rerunning with a matching OPENBLAS_CORETYPE when
OpenBLAS fell back to a generic core), and the measured limits (BLAS sgemm
rate, streaming-read bandwidth). Import it after OPENBLAS_NUM_THREADS is
set: OpenBLAS fixes its thread count when NumPy loads it."""

import ctypes
import os
import re
import subprocess
import sys
import time

import numpy as np

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


_GETCONF_CACHE = re.compile(r"^LEVEL(\d)_(DCACHE|ICACHE|CACHE)_SIZE\s+(\d+)\s*$")


def getconf_caches(text):
    """The caches in `getconf -a`'s output (glibc reads them from CPUID):
    [{level, type, size_bytes}], sizes of 0 or none left out."""
    kinds = {"DCACHE": "Data", "ICACHE": "Instruction", "CACHE": "Unified"}
    caches = []
    for line in text.splitlines():
        match = _GETCONF_CACHE.match(line.strip())
        if match and int(match.group(3)) > 0:
            caches.append({"level": int(match.group(1)), "type": kinds[match.group(2)],
                           "size_bytes": int(match.group(3))})
    return caches


def _sysfs_caches():
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
    return caches


def cache_info():
    """The caches of cpu0: [{level, type, size_bytes, source}], and the
    last-level cache (highest level holding data). From sysfs; where a VM
    has no cache entries there, from `getconf -a` (CPUID, as glibc reads
    it)."""
    caches, source = _sysfs_caches(), "sysfs"
    if not caches:
        try:
            text = subprocess.run(["getconf", "-a"], capture_output=True, text=True,
                                  timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            text = ""
        caches, source = getconf_caches(text), "getconf"
    for cache in caches:
        cache["source"] = source
    data = [c for c in caches if c["type"] != "Instruction"]
    llc = max(data, key=lambda c: (c["level"], c["size_bytes"])) if data else None
    return caches, llc


def mapped_libraries(*needles):
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
    candidates = sorted(mapped_libraries("openblas"),
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
    others = [os.path.basename(p) for p in mapped_libraries("blas", "mkl", "blis")]
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


def rerun_with_matching_blas_core(argv, module="moe_mlir.bench"):
    """Re-executes `python -m module argv` with OPENBLAS_CORETYPE set when OpenBLAS
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


def mib(nbytes):
    return nbytes / (1 << 20)


def describe_machine(machine):
    cpu = machine["cpu"]
    caches = ", ".join(f"L{c['level']}{c['type'][0].lower() if c['type'] != 'Unified' else ''} "
                       f"{fmt_bytes(c['size_bytes'])}" for c in machine["caches"])
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
        f"caches: {caches or 'unknown'} (LLC {fmt_bytes(machine['llc_bytes'] or 0)}"
        f"{', from getconf: no sysfs entries' if machine['caches'] and machine['caches'][0].get('source') == 'getconf' else ''})",
        f"blas: {version or 'BLAS'} core {core}",
    ]


def fmt_bytes(nbytes):
    if nbytes >= 1 << 30:
        return f"{nbytes / (1 << 30):.1f} GiB"
    if nbytes >= 1 << 20:
        return f"{nbytes / (1 << 20):.0f} MiB"
    return f"{nbytes / (1 << 10):.0f} KiB"


# ----------------------------------------------------------------------------
# The machine's limits
# ----------------------------------------------------------------------------


def best_time(fn, repeats, budget=20.0, min_seconds=0.0):
    """Fastest of at least `repeats` calls, and of as many more as fit in
    `min_seconds` (a few calls of a millisecond-long layer land on the
    host's noise: its best needs more tries); fewer once `budget` seconds
    are spent."""
    times = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        if elapsed > budget or (len(times) >= repeats and elapsed >= min_seconds):
            break
    return min(times)


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
