"""The `_checked` entry points moe-cpu-pipeline adds: called through ctypes
with bad descriptors (wrong sizes, inconsistent T, null and misaligned
pointers, offsets, strided views), each returns its MoeEntryStatus and the
layer does not run; a good call matches the unchecked entry bit for bit. And
the GPU artifacts' argument validation, which needs no GPU."""

import ctypes
import re
from pathlib import Path

import numpy as np
import pytest

from moe_mlir import builder, gpu, runner
from moe_mlir.builder import ArgSpec, Signature
from moe_mlir.policies import Layer, TokenChoice

LAYER = Layer(8, 16, 4, TokenChoice(2), "relu", "f32")
ENTRY_H = Path(__file__).resolve().parents[2] / "include" / "moe-c" / "Entry.h"

# a + b for T x 4 arrays, T dynamic: the linalg op ties the T of a and b.
ADD = """func.func @add(%a: tensor<?x4xf32>, %b: tensor<?x4xf32>) -> tensor<?x4xf32> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %a, %c0 : tensor<?x4xf32>
  %e = tensor.empty(%t) : tensor<?x4xf32>
  %r = linalg.add ins(%a, %b : tensor<?x4xf32>, tensor<?x4xf32>)
                  outs(%e : tensor<?x4xf32>) -> tensor<?x4xf32>
  return %r : tensor<?x4xf32>
}
"""
ADD_SIG = Signature("add", [ArgSpec("a", ("T", 4), "f32"), ArgSpec("b", ("T", 4), "f32")],
                    [ArgSpec("r", ("T", 4), "f32")])


def _inputs(layer, tokens=5, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(tokens, layer.model_dim), (layer.model_dim, layer.experts)]
    shapes += list(layer.weight_shapes())
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


@pytest.fixture(scope="module")
def layer_fns(compiled):
    fn = compiled(builder.build_layer(LAYER))
    return fn, runner.Function(fn.library, fn.signature, checked=True)


@pytest.fixture(scope="module")
def add_fn(compiled):
    fn = compiled((ADD, ADD_SIG))
    return runner.Function(fn.library, fn.signature, checked=True)


def _expect(fn, descriptors, name, argument):
    """Calls `fn` on `descriptors`; it must raise EntryError `name` about
    `argument`."""
    with pytest.raises(runner.EntryError) as info:
        fn.call_descriptors(descriptors)
    assert (info.value.name, info.value.argument) == (name, argument), str(info.value)
    return info.value


def test_status_names_match_the_header():
    text = ENTRY_H.read_text()
    enum = dict((int(v), k) for k, v in re.findall(r"(MOE_ENTRY_\w+) = (\d+),", text))
    assert enum == runner.ENTRY_STATUS_NAMES


def test_good_call_matches_unchecked_bit_for_bit(layer_fns):
    plain, checked = layer_fns
    args = _inputs(LAYER)
    want, got = plain(*args), checked(*args)
    assert got.shape == want.shape and got.tobytes() == want.tobytes()
    # The same through raw descriptors.
    raw = checked.call_descriptors([runner.descriptor(a) for a in args])
    assert raw.tobytes() == want.tobytes()


def test_wrong_static_sizes(layer_fns):
    _, fn = layer_fns
    args = _inputs(LAYER)
    router = np.zeros((LAYER.model_dim, LAYER.experts + 1), np.float32)
    descs = [runner.descriptor(a) for a in args]
    descs[1] = runner.descriptor(router)
    _expect(fn, descs, "MOE_ENTRY_WRONG_STATIC_SIZE", 1)
    # Half the experts' first weights.
    w = args[2][: LAYER.experts // 2]
    descs = [runner.descriptor(a) for a in args]
    descs[2] = runner.descriptor(np.ascontiguousarray(w))
    err = _expect(fn, descs, "MOE_ENTRY_WRONG_STATIC_SIZE", 2)
    assert f"argument '{fn.signature.args[2].name}'" in str(err)


def test_negative_and_inconsistent_token_count(add_fn):
    a, b = np.ones((3, 4), np.float32), np.ones((2, 4), np.float32)
    _expect(add_fn, [runner.descriptor(a), runner.descriptor(b)],
            "MOE_ENTRY_INCONSISTENT_SIZE", 1)
    negative = runner.descriptor(a)
    negative.sizes[0] = -1
    _expect(add_fn, [negative, runner.descriptor(a)], "MOE_ENTRY_NEGATIVE_SIZE", 0)
    good = add_fn.call_descriptors([runner.descriptor(a), runner.descriptor(a)])
    assert good.tobytes() == (a + a).tobytes()


def test_null_pointers(layer_fns, add_fn):
    _, fn = layer_fns
    descs = [runner.descriptor(a) for a in _inputs(LAYER)]
    descs[0].aligned = descs[0].allocated = None
    _expect(fn, descs, "MOE_ENTRY_NULL_POINTER", 0)
    # No element, no pointer needed: T = 0.
    empty = runner.descriptor(np.zeros((0, 4), np.float32))
    empty.aligned = empty.allocated = None
    assert add_fn.call_descriptors([empty, empty]).shape == (0, 4)


def test_misaligned_pointer(layer_fns):
    _, fn = layer_fns
    args = _inputs(LAYER)
    x = args[0]
    storage = bytearray(x.nbytes + 8)
    base = np.frombuffer(storage, np.uint8)
    start = (-base.ctypes.data) % 8 + 1  # 1 byte past an 8-byte boundary
    view = np.frombuffer(storage, np.float32, count=x.size, offset=start).reshape(x.shape)
    view[...] = x
    assert view.ctypes.data % 4 == 1
    descs = [runner.descriptor(a) for a in args]
    descs[0] = runner.descriptor(view)
    _expect(fn, descs, "MOE_ENTRY_MISALIGNED_POINTER", 0)


def test_offset_and_strided_views(layer_fns):
    _, fn = layer_fns
    args = _inputs(LAYER)
    descs = [runner.descriptor(a) for a in args]
    descs[0].offset = 1
    _expect(fn, descs, "MOE_ENTRY_NONZERO_OFFSET", 0)
    wide = np.zeros((LAYER.model_dim, 2 * LAYER.experts), np.float32)
    for view in (wide[:, ::2], np.zeros((LAYER.experts, LAYER.model_dim), np.float32).T):
        descs = [runner.descriptor(a) for a in args]
        descs[1] = runner.descriptor(view)
        _expect(fn, descs, "MOE_ENTRY_NOT_CONTIGUOUS", 1)
    # A size-1 dimension's stride is never used: x of one token whose
    # strides are (1, 1) in elements.
    x1 = np.lib.stride_tricks.as_strided(args[0][:1].copy(), strides=(4, 4))
    assert x1.shape == (1, LAYER.model_dim) and x1.strides == (4, 4)
    got = fn.call_descriptors([runner.descriptor(x1)] + [runner.descriptor(a) for a in args[1:]])
    assert got.tobytes() == fn(args[0][:1].copy(), *args[1:]).tobytes()


def test_python_checks_still_run_first(layer_fns):
    _, fn = layer_fns
    args = _inputs(LAYER)
    args[1] = np.zeros((LAYER.model_dim, 5), np.float32)
    with pytest.raises(ValueError, match="argument 'router' must have shape"):
        fn(*args)


# ------------------------------------------------------------ GPU artifacts --

GPU_SIG = Signature("layer", [ArgSpec("x", ("T", 8), "f32"), ArgSpec("w", (4, 8), "bf16")],
                    [ArgSpec("y", ("T", 8), "f32")])


def _device(pointer, shape, dtype, strides=None):
    return gpu.DeviceArray(None, pointer, shape, dtype, owner=False, strides=strides)


def test_gpu_validation_accepts_good_arrays():
    x = np.zeros((3, 8), np.float32)
    symbols = gpu.validate_arguments(GPU_SIG, [x, _device(0x1000, (4, 8), np.uint16)])
    assert symbols == {"T": 3}
    # NumPy views are copied to contiguous device memory: fine.
    gpu.validate_arguments(GPU_SIG, [np.zeros((3, 16), np.float32)[:, ::2],
                                     np.zeros((4, 8), np.uint16)])


@pytest.mark.parametrize("args, error, message", [
    ([np.zeros((3, 8), np.float64), np.zeros((4, 8), np.uint16)], TypeError,
     "argument 'x' must have dtype float32"),
    ([np.zeros((3, 8), np.float32), np.zeros((4, 8), np.float32)], TypeError,
     "bf16 values travel as uint16 bits"),
    ([np.zeros((3, 8, 1), np.float32), np.zeros((4, 8), np.uint16)], ValueError,
     "argument 'x' must have rank 2"),
    ([np.zeros((3, 8), np.float32), np.zeros((8, 4), np.uint16)], ValueError,
     r"argument 'w' must have shape \(4, 8\)"),
    ([[0.0] * 8, np.zeros((4, 8), np.uint16)], TypeError,
     "must be a numpy array or a DeviceArray"),
    ([np.zeros((3, 8), np.float32)], TypeError, "takes 2 arguments"),
    ([np.zeros((3, 8), np.float32), _device(0, (4, 8), np.uint16)], ValueError,
     "argument 'w' is a null device pointer"),
    ([np.zeros((3, 8), np.float32), _device(0x1001, (4, 8), np.uint16)], ValueError,
     "not aligned to 2 bytes"),
    ([np.zeros((3, 8), np.float32), _device(0x1000, (4, 8), np.uint16, strides=(1, 4))],
     ValueError, r"must be contiguous \(row-major strides \(8, 1\)\)"),
])
def test_gpu_validation_rejects(args, error, message):
    with pytest.raises(error, match=message):
        gpu.validate_arguments(GPU_SIG, args)


def test_gpu_inconsistent_symbol():
    sig = Signature("f", [ArgSpec("a", ("T", 2), "f32"), ArgSpec("b", ("T",), "i32")],
                    [ArgSpec("y", ("T", 2), "f32")])
    with pytest.raises(ValueError, match="argument 'b' dimension 0 is 4, but T = 3"):
        gpu.validate_arguments(sig, [np.zeros((3, 2), np.float32), np.zeros(4, np.int32)])
    # An empty device array may have a null pointer.
    gpu.validate_arguments(sig, [_device(0, (0, 2), np.float32), np.zeros(0, np.int32)])
