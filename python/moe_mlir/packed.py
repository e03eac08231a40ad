"""Layers whose expert weights are packed once, then called many times.

``compile_packed(text, signature)`` compiles a layer with
``moe-pack-expert-weights`` (docs/Passes/MoEPasses.md) in front of the CPU
pipeline, and returns a ``PackedLayer``::

    layer = packed.compile_packed(text, sig)
    layer.prepare(w_gate, w_up, w_down)   # <name>_pack_weights, once
    y = layer(x, router)                  # <name>_packed, every call

The packed weights are column panels (``#moe.packed<panel = P>``,
``[E, ceil(N / P), K, P]``) whose width is the micro-kernel's for the host
(docs/cpu-codegen.md); which arguments are weights, and their packed types,
are read from the functions the pass adds.
"""

import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from . import runner
from .builder import ArgSpec, Signature

# The panel widths of the micro-kernel table (lib/Pipelines/CPUTarget.cpp),
# by the features of the host: the first entry whose features it has.
_PANELS = [(("avx512f",), 64), (("avx2", "fma"), 16), ((), 8)]

_FUNC = re.compile(r"func\.func @([\w$.]+)\((.*?)\)\s*(?:->\s*(\(.*?\)|tensor<[^>]*>))?\s*(?:attributes|\{)")
_TENSOR = re.compile(r"tensor<([^>]*)>")


def default_panel(cpuinfo="/proc/cpuinfo"):
    """The panel width moe-cpu-pipeline's micro-kernel table gives this
    host."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in open(cpuinfo)
                      if line.startswith("flags")), [])
    except OSError:
        flags = []
    for needs, panel in _PANELS:
        if all(f in flags for f in needs):
            return panel
    return _PANELS[-1][1]


def _specs(text):
    """The ArgSpecs of a list of tensor types (in order)."""
    specs = []
    for i, inner in enumerate(_TENSOR.findall(text)):
        *dims, dtype = inner.split("x")
        shape = tuple(int(d) if d != "?" else f"?{i}" for d in dims)
        specs.append((shape, dtype))
    return specs


def _functions(module_text):
    """name -> (argument types, result types) of every func.func."""
    funcs = {}
    for name, args, results in _FUNC.findall(module_text):
        funcs[name] = (_specs(args), _specs(results or ""))
    return funcs


class PackedLayer:
    """A layer compiled with its pack-once entry points.

    ``prepare(*weights)`` packs the weights (arrays of the unpacked entry's
    shapes) and keeps them; ``__call__(*arrays)`` takes the other arguments
    of the layer and runs the packed entry. ``pack`` returns the packed
    arrays without keeping them; ``unpacked`` is the original entry."""

    def __init__(self, library, signature, weight_positions, pack_signature, packed_signature,
                 checked=False, groups=None):
        self.signature = signature
        self.weight_positions = weight_positions
        # How many packed arrays each weight becomes (2: int8 panels and
        # their scales).
        self.groups = groups or [1] * len(weight_positions)
        self.weight_names = [signature.args[i].name for i in weight_positions]
        self._pack = runner.Function(library, pack_signature, checked=checked)
        self._packed = runner.Function(library, packed_signature, checked=checked)
        self.unpacked = runner.Function(library, signature, checked=checked)
        self.packed_weights = None

    def pack(self, *weights):
        if len(weights) != len(self.weight_positions):
            raise TypeError(f"pack takes the {len(self.weight_positions)} weights "
                            f"({', '.join(self.weight_names)}), got {len(weights)}")
        packed = self._pack(*weights)
        return packed if isinstance(packed, tuple) else (packed,)

    def prepare(self, *weights):
        """Packs `weights` once for every later call; returns self."""
        self.packed_weights = self.pack(*weights)
        return self

    def load_packed(self, *arrays):
        """Takes weights that are packed already (e.g. converted from a
        checkpoint's quantized blocks) for every later call, as `pack`
        returns them; checks each one's shape and dtype against the packed
        entry; returns self."""
        specs = self._pack.signature.results
        if len(arrays) != len(specs):
            raise TypeError(f"load_packed takes the {len(specs)} packed arrays "
                            f"({', '.join(s.name for s in specs)}), got {len(arrays)}")
        checked = []
        for spec, array in zip(specs, arrays):
            want = np.dtype(runner.NUMPY_DTYPES[spec.dtype])
            if not isinstance(array, np.ndarray) or array.dtype != want:
                raise TypeError(f"packed array '{spec.name}' must be a numpy array of {want}, "
                                f"got {getattr(array, 'dtype', type(array).__name__)}")
            if tuple(array.shape) != tuple(spec.shape):
                raise ValueError(f"packed array '{spec.name}' must have shape {spec.shape}, "
                                 f"got {array.shape}")
            # (Aligned as the pack function's own results are.)
            copy = runner.aligned_empty(array.shape, array.dtype)
            copy[...] = array
            checked.append(copy)
        self.packed_weights = tuple(checked)
        return self

    def __call__(self, *arrays):
        if self.packed_weights is None:
            raise RuntimeError("call prepare(" + ", ".join(self.weight_names) + ") first")
        args, rest = [], iter(arrays)
        count = len(self.signature.args) - len(self.weight_positions)
        if len(arrays) != count:
            names = [a.name for i, a in enumerate(self.signature.args)
                     if i not in self.weight_positions]
            raise TypeError(f"the packed layer takes {count} arrays ({', '.join(names)}), "
                            f"got {len(arrays)}")
        weights = iter(self.packed_weights)
        group = dict(zip(self.weight_positions, self.groups))
        for i in range(len(self.signature.args)):
            if i in group:
                args.extend(next(weights) for _ in range(group[i]))
            else:
                args.append(next(rest))
        return self._packed(*args)


def compile_packed(mlir_text, signature: Signature, workdir=None, panel=None, checked=False,
                   threads=0, pipeline=None, storage="f32", group=32, activations="f32",
                   scales="f32", **kwargs):
    """Compiles `mlir_text` with its packed entry points and returns a
    PackedLayer for `signature`'s function. `panel` defaults to the host's
    micro-kernel width; `pipeline` to runner.cpu_pipeline(threads);
    `storage="bf16"` packs f32 weights as bf16 (rounded to nearest even;
    the packed arrays are then uint16 bf16 bits); `storage="i8"` quantizes
    them to int8 with an f32 scale per output column (each weight then packs
    into two arrays: the int8 panels and their scales); `storage="i4"` to
    4-bit values, two per byte, with a scale per `group` rows (along K) and
    column (two arrays per weight too: the bytes and the scales);
    `storage="i4", activations="i8"` stores them for the integer dot
    product, whose tiles quantize their rows to int8 per group (GGUF's
    Q8_0 x Q4_0; see #moe.packed); `scales="f16"` stores the scales of i8
    or i4 weights as f16 (float16 arrays; with storage="i4", group=32,
    activations="i8": GGUF's Q4_0 block, reference.from_q4_0 reads one)."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="moe-mlir-"))
    workdir.mkdir(parents=True, exist_ok=True)
    panel = panel or default_panel()
    pack = (f"moe-pack-expert-weights{{panel={panel} storage={storage} group={group} "
            f"activations={activations} scales={scales}}}")
    src = workdir / "layer.mlir"
    src.write_text(mlir_text)
    proc = subprocess.run([runner.tool("moe-opt"), f"--pass-pipeline=builtin.module({pack})",
                           str(src)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise runner.CompileError(f"moe-opt {pack} failed:\n{proc.stderr}")
    funcs = _functions(proc.stdout)
    name = signature.name
    if f"{name}_packed" not in funcs:
        raise runner.CompileError(f"moe-pack-expert-weights found no expert weight of @{name} "
                                  "to pack (weights must be arguments that the expert body "
                                  "multiplies by with linalg.matmul)")
    unpacked_args, _ = funcs[name]
    packed_args, _ = funcs[f"{name}_packed"]
    # Walk both argument lists: a packed weight's type changes (its rank
    # grows), and an int8 one is followed by its scales.
    positions, groups, packed_specs, packed_entry = [], [], [], []
    j = 0
    for i, arg in enumerate(signature.args):
        if packed_args[j] == unpacked_args[i]:
            packed_entry.append(arg)
            j += 1
            continue
        count = 2 if packed_args[j][1] == "i8" else 1
        names = ["packed_" + arg.name, "scales_" + arg.name][:count]
        specs = [ArgSpec(n, *packed_args[j + c]) for c, n in enumerate(names)]
        positions.append(i)
        groups.append(count)
        packed_specs += specs
        packed_entry += specs
        j += count
    pack_sig = Signature(f"{name}_pack_weights", [signature.args[i] for i in positions],
                         packed_specs)
    packed_sig = Signature(f"{name}_packed", packed_entry, signature.results)
    lib = runner.compile_module(mlir_text, workdir,
                                pipeline=f"{pack},{pipeline or runner.cpu_pipeline(threads)}",
                                **kwargs)
    return PackedLayer(lib, signature, positions, pack_sig, packed_sig, checked=checked,
                       groups=groups)
