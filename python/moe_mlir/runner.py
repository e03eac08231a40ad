"""Compiles ``moe`` IR to a shared library and calls it with NumPy arrays.

The library is built by ``moe-opt --moe-cpu-pipeline`` (to the LLVM
dialect, entry points with ``_mlir_ciface_`` wrappers), ``mlir-translate
--mlir-to-llvmir`` and ``clang-22 -O3 -fno-unroll-loops -shared``. Arguments travel as memref
descriptors built with ctypes; bf16 tensors are passed as uint16 arrays
holding bf16 bits. The result comes back as a descriptor of a buffer the
library malloc'ed (the C interface's first argument); it is copied into a
NumPy array and freed.

With ``MOE_SANITIZE=1`` in the environment (or ``sanitize=True``), the
library is compiled with ``-fsanitize=address,undefined``: AddressSanitizer
instruments every function of the generated LLVM IR (clang only instruments
functions that carry ``sanitize_address``, so the flag is forced onto all of
them); UBSan's checks are inserted by clang's C/C++ front end and do not
apply to LLVM IR input. The library then needs the ASan runtime loaded
first, so Python must start with it preloaded (``sanitizer_env()`` gives the
environment)::

    LD_PRELOAD=$(clang-22 -print-file-name=libclang_rt.asan-x86_64.so) \
    ASAN_OPTIONS=detect_leaks=0:allow_user_poisoning=0 MOE_SANITIZE=1 /usr/bin/python3 ...

(leaks are not reported: the interpreter leaks by design).

With ``checked=True`` the runner calls the ``_mlir_ciface_<name>_checked``
twin that moe-cpu-pipeline adds (``checked-entry-points``, see
``include/moe-c/Entry.h``): it validates every descriptor in native code and
returns a status first, which the runner turns into an ``EntryError`` naming
the status and the argument. The Python-side checks run before it either way.
"""

import ctypes
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .builder import ArgSpec, Signature

LLVM_PREFIX = Path("/usr/lib/llvm-22")
REPO_ROOT = Path(__file__).resolve().parents[2]

NUMPY_DTYPES = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16, "i8": np.int8, "i32": np.int32,
                "i64": np.int64}


class CompileError(RuntimeError):
    """A tool of the compile chain failed; the message holds its stderr."""


# MoeEntryStatus of include/moe-c/Entry.h: the low byte of a checked entry's
# status; the index of the offending argument is above it.
ENTRY_STATUS_NAMES = {
    0: "MOE_ENTRY_OK",
    1: "MOE_ENTRY_NEGATIVE_SIZE",
    2: "MOE_ENTRY_WRONG_STATIC_SIZE",
    3: "MOE_ENTRY_NULL_POINTER",
    4: "MOE_ENTRY_MISALIGNED_POINTER",
    5: "MOE_ENTRY_NONZERO_OFFSET",
    6: "MOE_ENTRY_NOT_CONTIGUOUS",
    7: "MOE_ENTRY_INCONSISTENT_SIZE",
}


class EntryError(RuntimeError):
    """A checked entry point rejected its arguments; the layer did not run.

    `status` is the raw code, `name` its kind (a MoeEntryStatus name),
    `argument` the index of the offending argument in the signature."""

    def __init__(self, function, status, arg_names):
        self.status, self.argument = status, status >> 8
        self.name = ENTRY_STATUS_NAMES.get(status & 0xFF, "MOE_ENTRY_UNKNOWN")
        which = (f"'{arg_names[self.argument]}'" if self.argument < len(arg_names)
                 else f"#{self.argument}")
        super().__init__(f"{function}_checked rejected argument {which}: {self.name} "
                         f"(status {status})")


def _build_dir():
    return Path(os.environ.get("MOE_BUILD", REPO_ROOT / "build"))


def tool(name):
    """Path of moe-opt (our build) or of an LLVM 22 tool."""
    if name.startswith("moe-"):
        path = _build_dir() / "bin" / name
    else:
        path = LLVM_PREFIX / "bin" / name
    if not path.exists():
        found = shutil.which(name)
        if not found:
            raise CompileError(f"cannot find {name} (looked for {path})")
        path = Path(found)
    return str(path)


def sanitize_enabled():
    """Whether MOE_SANITIZE asks for sanitized layers."""
    return os.environ.get("MOE_SANITIZE", "") not in ("", "0")


def _clang():
    return tool("clang-22") if shutil.which("clang-22") else tool("clang")


def sanitizer_runtime():
    """Path of clang's shared ASan runtime (libclang-rt-22-dev)."""
    path = subprocess.run([_clang(), "-print-file-name=libclang_rt.asan-x86_64.so"],
                          capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(path) or not os.path.exists(path):
        raise CompileError("clang has no libclang_rt.asan-x86_64.so: install libclang-rt-22-dev")
    return path


def sanitizer_env(env=None):
    """`env` (default: this process's) plus what a Python process needs to
    load sanitized layers: the ASan runtime preloaded, leaks not reported,
    UBSan fatal, and MOE_SANITIZE=1."""
    env = dict(os.environ if env is None else env)
    env.update(LD_PRELOAD=sanitizer_runtime(), MOE_SANITIZE="1",
               ASAN_OPTIONS="detect_leaks=0:allow_user_poisoning=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    return env


def _asan_loaded():
    with open("/proc/self/maps") as maps:
        return "libclang_rt.asan" in maps.read()


def _tool_env():
    """The tools run without a preloaded ASan runtime (a sanitized moe-opt
    finds its own through its rpath)."""
    env = dict(os.environ)
    kept = [p for p in env.get("LD_PRELOAD", "").split() if "libclang_rt.asan" not in p]
    if kept:
        env["LD_PRELOAD"] = " ".join(kept)
    else:
        env.pop("LD_PRELOAD", None)
    return env


def _run(cmd, what):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_tool_env())
    if proc.returncode != 0:
        raise CompileError(f"{what} failed ({' '.join(cmd)}):\n{proc.stderr}")
    return proc


# Results stay results (dynamic shapes cannot become out-parameters); the
# option is spelled out because the runner depends on it.
DEFAULT_PIPELINE = "moe-cpu-pipeline{results-to-out-params=false}"


def compile_module(mlir_text, out_dir, pipeline=DEFAULT_PIPELINE, opt_level="-O3",
                   march="native", sanitize=None):
    """Lowers `mlir_text` with `pipeline` and builds `out_dir/libmoe.so`
    (with ASan when `sanitize`, default: MOE_SANITIZE)."""
    sanitize = sanitize_enabled() if sanitize is None else sanitize
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    src = out_dir / "layer.mlir"
    src.write_text(mlir_text)
    llvm_dialect = out_dir / "layer.llvm.mlir"
    _run([tool("moe-opt"), f"--pass-pipeline=builtin.module({pipeline})", str(src),
          "-o", str(llvm_dialect)], "moe-opt")
    ll = out_dir / "layer.ll"
    _run([tool("mlir-translate"), "--mlir-to-llvmir", str(llvm_dialect), "-o", str(ll)],
         "mlir-translate")
    lib = out_dir / "libmoe.so"
    clang = _clang()
    runtime = LLVM_PREFIX / "lib"
    flags = []
    if sanitize:
        # ASan runs in the optimization pipeline, which -O0 does not build;
        # -O3 with ASan takes ~15x as long to compile as -O1.
        opt_level = "-O1"
        flags = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-shared-libsan",
                 "-mllvm", "-force-attribute=sanitize_address"]
    # The host's widest vectors (AVX2 + FMA here) unless told otherwise.
    # The pipeline has already unrolled the kernels as it wants them;
    # LLVM's loop unroller only unrolls them again, which took 3.5x the
    # compile time and changed no run time measured (docs/cpu-codegen.md).
    _run([clang, opt_level, "-fno-unroll-loops", f"-march={march}", "-shared", "-fPIC",
          "-Wno-override-module", *flags, str(ll), "-o", str(lib),
          f"-L{runtime}", "-lmlir_c_runner_utils", "-lomp", f"-Wl,-rpath,{runtime}", "-lm"],
         "clang")
    return lib


# The alignment of the arrays the runner returns: a vector register's
# (AVX-512), so that a packed weight, which the micro-kernel reads a vector at
# a time, never splits its loads across cache lines (NumPy's own arrays start
# 16 bytes past one; that costs the packed kernels ~20 %).
ALIGNMENT = 64


def aligned_empty(shape, dtype, alignment=ALIGNMENT):
    """An uninitialized C-contiguous array whose data starts at a multiple
    of `alignment` bytes."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buffer = np.empty(nbytes + alignment, np.uint8)
    start = -buffer.ctypes.data % alignment
    return buffer[start:start + nbytes].view(dtype).reshape(shape)


def _descriptor_type(rank):
    class MemRefDescriptor(ctypes.Structure):
        _fields_ = [
            ("allocated", ctypes.c_void_p),
            ("aligned", ctypes.c_void_p),
            ("offset", ctypes.c_int64),
            ("sizes", ctypes.c_int64 * rank),
            ("strides", ctypes.c_int64 * rank),
        ]

    return MemRefDescriptor


def descriptor(array):
    """The memref descriptor of `array` (its pointer, shape and strides in
    elements, offset 0), as the C interface takes it. Strides that are not a
    multiple of the item size are truncated: the checked entry rejects them
    as non-contiguous."""
    desc = _descriptor_type(array.ndim)()
    desc.allocated = desc.aligned = array.ctypes.data
    desc.offset = 0
    for i, (size, stride) in enumerate(zip(array.shape, array.strides)):
        desc.sizes[i] = size
        desc.strides[i] = stride // array.itemsize
    return desc


class Function:
    """A compiled entry point with a known signature.

    Calling it checks every array's rank, shape and dtype against the
    signature (binding symbolic sizes such as the token count `T`) and raises
    ValueError/TypeError before any native code runs. With `checked`, the
    native `_checked` entry validates the descriptors too and a nonzero
    status raises EntryError.
    """

    def __init__(self, library, signature: Signature, checked=False):
        self.signature, self.library, self.checked = signature, library, checked
        if sanitize_enabled() and not _asan_loaded():
            raise RuntimeError(
                "MOE_SANITIZE: the layer needs the ASan runtime loaded first; start Python with "
                "LD_PRELOAD=$(clang-22 -print-file-name=libclang_rt.asan-x86_64.so) "
                "ASAN_OPTIONS=detect_leaks=0:allow_user_poisoning=0 "
                "(runner.sanitizer_env() gives the environment)")
        self._lib = ctypes.CDLL(str(library))
        suffix = "_checked" if checked else ""
        self._fn = getattr(self._lib, f"_mlir_ciface_{signature.name}{suffix}")
        self._fn.restype = None
        self._free = ctypes.CDLL(None).free
        self._free.argtypes = [ctypes.c_void_p]

    def _bind(self, spec: ArgSpec, array, symbols):
        if not isinstance(array, np.ndarray):
            raise TypeError(f"argument '{spec.name}' must be a numpy array, got {type(array).__name__}")
        want = np.dtype(NUMPY_DTYPES[spec.dtype])
        if array.dtype != want:
            hint = " (bf16 values travel as uint16 bits; see reference.to_bf16_bits)" if spec.dtype == "bf16" else ""
            raise TypeError(f"argument '{spec.name}' must have dtype {want} for {spec.dtype}{hint}, "
                            f"got {array.dtype}")
        if array.ndim != len(spec.shape):
            raise ValueError(f"argument '{spec.name}' must have rank {len(spec.shape)} "
                             f"(shape {spec.shape}), got shape {array.shape}")
        for axis, (want_dim, got) in enumerate(zip(spec.shape, array.shape)):
            if isinstance(want_dim, str):
                bound = symbols.setdefault(want_dim, got)
                if bound != got:
                    raise ValueError(f"argument '{spec.name}' dimension {axis} is {got}, but "
                                     f"{want_dim} = {bound} from an earlier argument")
            elif want_dim != got:
                raise ValueError(f"argument '{spec.name}' must have shape {spec.shape}, got {array.shape}")
        return np.ascontiguousarray(array)

    def __call__(self, *arrays):
        """Runs the function; returns its result, or a tuple of results."""
        sig = self.signature
        if len(arrays) != len(sig.args):
            names = ", ".join(a.name for a in sig.args)
            raise TypeError(f"{sig.name} takes {len(sig.args)} arrays ({names}), got {len(arrays)}")
        symbols = {}
        bound = [self._bind(spec, a, symbols) for spec, a in zip(sig.args, arrays)]
        return self.call_descriptors([descriptor(a) for a in bound], symbols)

    def call_descriptors(self, descriptors, symbols=None):
        """Calls the native entry on memref descriptors as they are (no
        Python-side checks: only the checked entry protects this call), and
        returns the results like __call__."""
        sig = self.signature
        # The C interface returns every result through one struct of
        # descriptors passed as the first argument; the checked twin returns
        # its status first in the same struct.
        fields = [("status", ctypes.c_int32)] if self.checked else []
        types = [_descriptor_type(len(r.shape)) for r in sig.results]
        fields += [(f"r{i}", t) for i, t in enumerate(types)]
        packed = len(fields) > 1
        results = (type("Results", (ctypes.Structure,), {"_fields_": fields})() if packed
                   else types[0]())
        self._fn(*[ctypes.byref(d) for d in [results] + list(descriptors)])
        descs = [getattr(results, f"r{i}") if packed else results for i in range(len(types))]
        if self.checked and results.status != 0:
            # The twin returned zero-filled buffers of its own: free them.
            for desc in descs:
                self._free(desc.allocated)
            raise EntryError(sig.name, results.status, [a.name for a in sig.args])
        outs = [self._take(spec, desc, symbols or {}) for spec, desc in zip(sig.results, descs)]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _take(self, spec, desc, symbols):
        """Copies a returned buffer into a new array and frees it."""
        shape = tuple(desc.sizes)
        for want, got in zip(spec.shape, shape):
            expected = symbols.get(want, got) if isinstance(want, str) else want
            if expected != got:
                raise RuntimeError(f"{self.signature.name} returned {spec.name} of shape "
                                   f"{shape}, expected {spec.shape}")
        dtype = np.dtype(NUMPY_DTYPES[spec.dtype])
        out = aligned_empty(shape, dtype)
        if out.size:
            base = ctypes.cast(desc.aligned, ctypes.POINTER(ctypes.c_uint8))
            extent = (desc.offset + sum((n - 1) * st for n, st in zip(shape, desc.strides)) + 1)
            flat = np.ctypeslib.as_array(base, shape=(extent * dtype.itemsize,)).view(dtype)
            out[...] = np.lib.stride_tricks.as_strided(
                flat[desc.offset:], shape=shape,
                strides=tuple(st * dtype.itemsize for st in desc.strides))
        self._free(desc.allocated)
        return out


def cpu_pipeline(threads=0, **options):
    """The moe-cpu-pipeline spelling the runner compiles with (threads=0:
    every core of the host)."""
    text = " ".join(f"{k.replace('_', '-')}={str(v).lower()}" for k, v in options.items())
    return f"moe-cpu-pipeline{{threads={threads} results-to-out-params=false {text}}}".replace(" }", "}")


def compile_function(mlir_text, signature: Signature, workdir=None, checked=False, **kwargs):
    """Compiles `mlir_text` and returns the callable entry point (the
    `_checked` one with `checked`; the pipeline must then keep
    checked-entry-points=true, its default)."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="moe-mlir-"))
    lib = compile_module(mlir_text, workdir, **kwargs)
    return Function(lib, signature, checked=checked)
