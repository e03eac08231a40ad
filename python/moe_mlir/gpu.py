"""Ahead-of-time GPU artifacts: build them here, run them on a GPU machine.

Building (needs this project's build, LLVM 22 and the CUDA toolkit):
``build_artifact`` lowers a function with ``moe-gpu-pipeline`` (kernels as a
fatbin for one chip), translates the host code to LLVM IR and links a shared
library against ``libMoECUDARuntime.so``, which it copies next to it with a
JSON manifest of the signature. The directory is self-contained: the library
finds the runtime through ``$ORIGIN`` and the runtime loads the CUDA driver
(``libcuda.so.1``) when first called.

Running (needs Python 3, NumPy and the NVIDIA driver only -- no LLVM, no
CUDA toolkit): ``load_artifact`` returns a ``GpuFunction`` that takes NumPy
arrays (copied to the device and back) or ``DeviceArray``s (device memory
this module allocates, or any device pointer such as a torch CUDA tensor's
``data_ptr()``), so that benchmarks can time the kernels alone.
"""

import ctypes
import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .builder import ArgSpec, Signature

NUMPY_DTYPES = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16, "i8": np.int8, "i32": np.int32,
                "i64": np.int64}
RUNTIME_NAME = "libMoECUDARuntime.so"


class GpuError(RuntimeError):
    """The CUDA runtime reported an error; the message is the driver's."""


# ---------------------------------------------------------------- building --

def gpu_pipeline(chip="sm_90", features="+ptx80", fmt="fatbin", **options):
    """The moe-gpu-pipeline spelling for `chip`."""
    text = " ".join(f"{k.replace('_', '-')}={v}" for k, v in options.items())
    return f"moe-gpu-pipeline{{chip={chip} features={features} format={fmt} {text}}}".replace(
        " }", "}")


def build_artifact(mlir_text, signature: Signature, out_dir, chip="sm_90", features="+ptx80",
                   fmt="fatbin", **options):
    """Compiles `mlir_text` into `out_dir/<name>.<chip>.so` (+ manifest and
    runtime) and returns the library's path."""
    from . import runner  # the compile chain; not needed to run artifacts

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{signature.name}.{chip}"
    work = Path(tempfile.mkdtemp(prefix=f"moe-gpu-{stem}-"))
    src = work / "layer.mlir"
    src.write_text(mlir_text)
    llvm_dialect = work / "layer.llvm.mlir"
    pipeline = gpu_pipeline(chip, features, fmt, **options)
    runner._run([runner.tool("moe-opt"), f"--pass-pipeline=builtin.module({pipeline})",
                 str(src), "-o", str(llvm_dialect)], "moe-opt")
    ll = work / "layer.ll"
    runner._run([runner.tool("mlir-translate"), "--mlir-to-llvmir", str(llvm_dialect), "-o",
                 str(ll)], "mlir-translate")
    runtime = runtime_library()
    shutil.copy2(runtime, out_dir / RUNTIME_NAME)
    lib = out_dir / f"{stem}.so"
    clang = runner.tool("clang-22") if shutil.which("clang-22") else runner.tool("clang")
    runner._run([clang, "-O2", "-shared", "-fPIC", "-Wno-override-module", str(ll), "-o",
                 str(lib), f"-L{out_dir}", "-lMoECUDARuntime", "-Wl,-rpath,$ORIGIN", "-lm"],
                "clang")
    manifest = {"library": lib.name, "runtime": RUNTIME_NAME, "chip": chip, "format": fmt,
                "pipeline": pipeline, "signature": asdict(signature)}
    (out_dir / f"{stem}.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return lib


def runtime_library():
    """libMoECUDARuntime.so of this project's build."""
    from . import runner

    path = runner._build_dir() / "lib" / RUNTIME_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the build found no CUDA toolkit "
                                "(MOE_ENABLE_CUDA_RUNTIME=OFF)")
    return path


def undefined_symbols(library):
    """Symbols `library` needs from elsewhere (nm -u), to check that an
    artifact needs only the runtime and the C library."""
    out = subprocess.run(["nm", "-D", "--undefined-only", str(library)], capture_output=True,
                         text=True, check=True).stdout
    return sorted(line.split()[-1] for line in out.splitlines() if line.strip())


# ----------------------------------------------------------------- running --

class CudaRuntime:
    """ctypes view of libMoECUDARuntime.so."""

    def __init__(self, path):
        self.lib = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        lib = self.lib
        lib.moeCudaInit.restype = ctypes.c_int
        lib.moeCudaLastError.restype = ctypes.c_char_p
        lib.moeCudaDeviceName.restype = ctypes.c_char_p
        lib.moeCudaComputeCapability.restype = ctypes.c_int
        lib.moeCudaMalloc.restype = ctypes.c_void_p
        lib.moeCudaMalloc.argtypes = [ctypes.c_size_t]
        lib.moeCudaFree.argtypes = [ctypes.c_void_p]
        lib.moeCudaCopy.restype = ctypes.c_int
        lib.moeCudaCopy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        lib.moeCudaSynchronize.restype = ctypes.c_int
        lib.moeCudaEventRecordNow.restype = ctypes.c_void_p
        lib.moeCudaEventElapsedMs.restype = ctypes.c_float
        lib.moeCudaEventElapsedMs.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.moeCudaEventFree.argtypes = [ctypes.c_void_p]

    def check(self, what):
        message = self.lib.moeCudaLastError().decode()
        if message:
            raise GpuError(f"{what}: {message}")

    def init(self):
        """Loads the driver; raises GpuError when there is no usable GPU."""
        if self.lib.moeCudaInit() != 0:
            raise GpuError(self.lib.moeCudaLastError().decode() or "CUDA initialization failed")
        return self

    def device(self):
        return self.lib.moeCudaDeviceName().decode(), self.lib.moeCudaComputeCapability()

    def malloc(self, nbytes):
        pointer = self.lib.moeCudaMalloc(max(int(nbytes), 1))
        self.check("cuMemAlloc")
        return pointer

    def free(self, pointer):
        self.lib.moeCudaFree(pointer)

    def copy(self, dst, src, nbytes):
        if nbytes and self.lib.moeCudaCopy(dst, src, nbytes) != 0:
            self.check("cuMemcpy")

    def synchronize(self):
        if self.lib.moeCudaSynchronize() != 0:
            self.check("cuCtxSynchronize")

    def time_ms(self, fn, repeat=10, warmup=2):
        """Best and median milliseconds of `fn()` by CUDA events."""
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeat):
            start = self.lib.moeCudaEventRecordNow()
            fn()
            end = self.lib.moeCudaEventRecordNow()
            times.append(self.lib.moeCudaEventElapsedMs(start, end))
            self.lib.moeCudaEventFree(start)
            self.lib.moeCudaEventFree(end)
        self.check("timing")
        return min(times), float(np.median(times))


class DeviceArray:
    """Device memory with a shape and dtype: allocated here (`owner`), or a
    view of memory someone else owns (a torch CUDA tensor's data_ptr(), with
    its `strides` in elements when it is a view: the artifacts take
    contiguous row-major arrays only, and GpuFunction rejects other
    strides)."""

    def __init__(self, runtime, pointer, shape, dtype, owner=True, strides=None):
        self.runtime, self.pointer = runtime, pointer
        self.shape, self.dtype, self.owner = tuple(shape), np.dtype(dtype), owner
        self.strides = tuple(strides) if strides is not None else contiguous_strides(self.shape)

    @classmethod
    def from_numpy(cls, runtime, array):
        array = np.ascontiguousarray(array)
        pointer = runtime.malloc(array.nbytes)
        runtime.copy(pointer, array.ctypes.data, array.nbytes)
        return cls(runtime, pointer, array.shape, array.dtype)

    def numpy(self):
        out = np.empty(self.shape, self.dtype)
        self.runtime.copy(out.ctypes.data, self.pointer, out.nbytes)
        return out

    def free(self):
        if self.owner and self.pointer:
            self.runtime.free(self.pointer)
        self.pointer = None

    def __del__(self):
        try:
            self.free()
        except Exception:  # interpreter shutdown
            pass


def contiguous_strides(shape):
    """Row-major strides of `shape`, in elements."""
    strides, stride = [], 1
    for size in reversed(shape):
        strides.append(stride)
        stride *= size
    return tuple(reversed(strides))


def validate_arguments(signature: Signature, args):
    """Checks `args` (NumPy arrays or DeviceArrays) against `signature`
    before anything is copied or launched: the types, dtypes, ranks and
    shapes (symbolic sizes such as `T` must agree across arguments), and for
    device memory a non-null pointer aligned to the item size and contiguous
    row-major strides (a dimension of size 1 may have any stride). NumPy
    arrays of any strides are fine: they are copied to contiguous device
    memory. Raises TypeError or ValueError naming the argument; returns the
    bound symbols."""
    if len(args) != len(signature.args):
        names = ", ".join(a.name for a in signature.args)
        raise TypeError(f"{signature.name} takes {len(signature.args)} arguments ({names}), "
                        f"got {len(args)}")
    symbols = {}
    for spec, value in zip(signature.args, args):
        if not isinstance(value, (np.ndarray, DeviceArray)):
            raise TypeError(f"argument '{spec.name}' must be a numpy array or a DeviceArray, "
                            f"got {type(value).__name__}")
        want = np.dtype(NUMPY_DTYPES[spec.dtype])
        if value.dtype != want:
            hint = " (bf16 values travel as uint16 bits)" if spec.dtype == "bf16" else ""
            raise TypeError(f"argument '{spec.name}' must have dtype {want} for {spec.dtype}"
                            f"{hint}, got {value.dtype}")
        if len(value.shape) != len(spec.shape):
            raise ValueError(f"argument '{spec.name}' must have rank {len(spec.shape)} "
                             f"(shape {spec.shape}), got shape {value.shape}")
        for axis, (want_dim, got) in enumerate(zip(spec.shape, value.shape)):
            if isinstance(want_dim, str):
                if symbols.setdefault(want_dim, got) != got:
                    raise ValueError(f"argument '{spec.name}' dimension {axis} is {got}, but "
                                     f"{want_dim} = {symbols[want_dim]} from an earlier argument")
            elif want_dim != got:
                raise ValueError(f"argument '{spec.name}' must have shape {spec.shape}, "
                                 f"got {value.shape}")
        if isinstance(value, DeviceArray):
            size = int(np.prod(value.shape))
            if size and not value.pointer:
                raise ValueError(f"argument '{spec.name}' is a null device pointer")
            if (value.pointer or 0) % want.itemsize:
                raise ValueError(f"argument '{spec.name}' device pointer {value.pointer:#x} is "
                                 f"not aligned to {want.itemsize} bytes")
            expected = contiguous_strides(value.shape)
            if size and any(n != 1 and got != exp for n, got, exp in
                            zip(value.shape, value.strides, expected)):
                raise ValueError(f"argument '{spec.name}' must be contiguous (row-major "
                                 f"strides {expected}), got strides {value.strides}")
    return symbols


def _descriptor_type(rank):
    class MemRefDescriptor(ctypes.Structure):
        _fields_ = [("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p),
                    ("offset", ctypes.c_int64), ("sizes", ctypes.c_int64 * rank),
                    ("strides", ctypes.c_int64 * rank)]

    return MemRefDescriptor


def _descriptor(pointer, shape):
    desc = _descriptor_type(len(shape))()
    desc.allocated = desc.aligned = pointer
    desc.offset = 0
    stride = 1
    for axis in reversed(range(len(shape))):
        desc.sizes[axis] = shape[axis]
        desc.strides[axis] = stride
        stride *= shape[axis]
    return desc


class GpuFunction:
    """An entry point of a GPU artifact. Arguments are NumPy arrays or
    DeviceArrays; results come back as NumPy arrays, or as DeviceArrays with
    `keep_on_device=True` (free them, or let them be collected)."""

    def __init__(self, library, signature: Signature, runtime: CudaRuntime):
        self.signature, self.runtime = signature, runtime
        self._lib = ctypes.CDLL(str(library))
        runtime.check(f"loading {Path(library).name}")
        self._fn = getattr(self._lib, f"_mlir_ciface_{signature.name}")
        self._fn.restype = None

    def __call__(self, *args, keep_on_device=False):
        sig = self.signature
        validate_arguments(sig, args)
        temporaries, device = [], []
        for value in args:
            if isinstance(value, np.ndarray):
                value = DeviceArray.from_numpy(self.runtime, value)
                temporaries.append(value)
            device.append(value)
        types = [_descriptor_type(len(r.shape)) for r in sig.results]
        packed = type("Results", (ctypes.Structure,),
                      {"_fields_": [(f"r{i}", t) for i, t in enumerate(types)]})
        results = packed() if len(types) > 1 else types[0]()
        descriptors = [results] + [_descriptor(d.pointer, d.shape) for d in device]
        try:
            self._fn(*[ctypes.byref(d) for d in descriptors])
            self.runtime.check(sig.name)
        finally:
            for temporary in temporaries:
                temporary.free()
        outs = []
        for i, spec in enumerate(sig.results):
            desc = getattr(results, f"r{i}") if len(types) > 1 else results
            shape = tuple(desc.sizes)
            contiguous = _descriptor(0, shape)
            if desc.offset != 0 or tuple(desc.strides) != tuple(contiguous.strides):
                raise GpuError(f"{sig.name} returned a non-contiguous {spec.name}")
            out = DeviceArray(self.runtime, desc.aligned, shape, NUMPY_DTYPES[spec.dtype])
            if not keep_on_device:
                host = out.numpy()
                out.free()
                out = host
            outs.append(out)
        return outs[0] if len(outs) == 1 else tuple(outs)


def _signature(data):
    def spec(entry):
        return ArgSpec(entry["name"], tuple(entry["shape"]), entry["dtype"])

    return Signature(data["name"], [spec(a) for a in data["args"]],
                     [spec(r) for r in data["results"]])


def load_artifact(manifest_path, runtime=None):
    """Loads `<name>.<chip>.json`'s library; returns (GpuFunction, runtime)."""
    manifest_path = Path(manifest_path)
    manifest = json.loads(manifest_path.read_text())
    directory = manifest_path.parent
    runtime = runtime or CudaRuntime(directory / manifest["runtime"]).init()
    fn = GpuFunction(directory / manifest["library"], _signature(manifest["signature"]), runtime)
    return fn, runtime
