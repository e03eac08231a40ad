"""Routing tensors that do not come from moe.route (function arguments):
token ids outside [0, T), offsets that decrease, start below 0 or end past
N, and no tokens at all. The compiled layer must stay in bounds and follow
the dialect's rules for them: an id outside [0, T) is an empty slot, and
expert e of the grouped layout owns rows max(offsets[0..e]) up to
max(start, offsets[e+1]), clamped to [0, N]. (Under MOE_SANITIZE=1 the
layers are also built with AddressSanitizer.)"""

import numpy as np
import pytest

from moe_mlir import packed
from moe_mlir import reference as R
from moe_mlir.builder import ArgSpec, Signature

D, H, E = 8, 16, 4

PIPELINES = {
    "fused": "moe-cpu-pipeline{results-to-out-params=false}",
    "fused-threads-2": "moe-cpu-pipeline{threads=2 results-to-out-params=false}",
    "reference": "moe-cpu-pipeline{fused=false results-to-out-params=false}",
    "gpu-emulated": "moe-gpu-emulation-pipeline{tile-rows=4 max-blocks=7}",
    # The packed entry (weights packed once by <f>_pack_weights): its tiles
    # run on the blocks that hold rows, whose count comes from the data.
    "packed": "moe-cpu-pipeline{results-to-out-params=false}",
    "packed-threads-2": "moe-cpu-pipeline{threads=2 results-to-out-params=false}",
    # Weights quantized to int8 (#moe.packed<storage = i8>): the same tiles,
    # plus each panel's scales.
    "packed-i8-threads-2": "moe-cpu-pipeline{threads=2 results-to-out-params=false}",
    # 4-bit (#moe.packed<storage = i4, group = 8>): a loop over row groups.
    "packed-i4-threads-2": "moe-cpu-pipeline{threads=2 results-to-out-params=false}",
}


@pytest.fixture(scope="module")
def layer_fn(compiled, tmp_path_factory):
    """layer_fn(function, pipeline name) -> a callable taking the unpacked
    entry's arrays (a packed pipeline packs the weights on each call)."""
    cache = {}

    def get(text_and_signature, pipeline):
        if not pipeline.startswith("packed"):
            return compiled(text_and_signature, pipeline=PIPELINES[pipeline])
        text, signature = text_and_signature
        key = (text, pipeline)
        if key not in cache:
            cache[key] = packed.compile_packed(text, signature,
                                               tmp_path_factory.mktemp(pipeline),
                                               pipeline=PIPELINES[pipeline],
                                               storage=_storage(pipeline), group=8)
        layer = cache[key]

        def call(*arrays):
            weights = [arrays[i] for i in layer.weight_positions]
            rest = [a for i, a in enumerate(arrays) if i not in layer.weight_positions]
            return layer.prepare(*weights)(*rest)

        return call

    return get

BODY = f"""
  ^bb0(%rows: tensor<?x{D}xf32>, %e1: tensor<{D}x{H}xf32>, %e2: tensor<{H}x{D}xf32>):
    %i0 = arith.constant 0 : index
    %f0 = arith.constant 0.0 : f32
    %n = tensor.dim %rows, %i0 : tensor<?x{D}xf32>
    %he = tensor.empty(%n) : tensor<?x{H}xf32>
    %h0 = linalg.fill ins(%f0 : f32) outs(%he : tensor<?x{H}xf32>) -> tensor<?x{H}xf32>
    %pre = linalg.matmul ins(%rows, %e1 : tensor<?x{D}xf32>, tensor<{D}x{H}xf32>) outs(%h0 : tensor<?x{H}xf32>) -> tensor<?x{H}xf32>
    %h = linalg.generic {{indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}} ins(%pre : tensor<?x{H}xf32>) outs(%he : tensor<?x{H}xf32>) {{
      ^bb0(%a: f32, %unused: f32):
        %act = arith.maximumf %a, %f0 : f32
        linalg.yield %act : f32
    }} -> tensor<?x{H}xf32>
    %oe = tensor.empty(%n) : tensor<?x{D}xf32>
    %o0 = linalg.fill ins(%f0 : f32) outs(%oe : tensor<?x{D}xf32>) -> tensor<?x{D}xf32>
    %o = linalg.matmul ins(%h, %e2 : tensor<?x{H}xf32>, tensor<{H}x{D}xf32>) outs(%o0 : tensor<?x{D}xf32>) -> tensor<?x{D}xf32>
    moe.yield %o : tensor<?x{D}xf32>
  }}"""


def _function(grouped):
    x_t, y_t = f"tensor<?x{D}xf32>", f"tensor<?x{D}xf32>"
    w_t = f"tensor<{E}x{D}x{H}xf32>, tensor<{E}x{H}x{D}xf32>"
    if grouped:
        ids_t, gates_t, rows_t = "tensor<?xi32>", "tensor<?xf32>", f"tensor<?x{D}xf32>"
        routing = [ArgSpec("ids", ("N",), "i32"), ArgSpec("gates", ("N",), "f32"),
                   ArgSpec("offsets", (E + 1,), "i32")]
        args = f"%ids: {ids_t}, %gates: {gates_t}, %offsets: tensor<{E + 1}xi32>"
        expert_operands = f"offsets(%offsets : tensor<{E + 1}xi32>) "
    else:
        ids_t, gates_t, rows_t = "tensor<4x?xi32>", "tensor<4x?xf32>", f"tensor<4x?x{D}xf32>"
        routing = [ArgSpec("ids", (E, "C"), "i32"), ArgSpec("gates", (E, "C"), "f32")]
        args = f"%ids: {ids_t}, %gates: {gates_t}"
        expert_operands = ""
    text = f"""func.func @layer(%x: {x_t}, {args}, %w1: tensor<{E}x{D}x{H}xf32>, %w2: tensor<{E}x{H}x{D}xf32>) -> {y_t} {{
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c0 : {x_t}
  %xe = moe.dispatch %x indices(%ids : {ids_t}) : {x_t} -> {rows_t}
  %ye = moe.expert %xe {expert_operands}weights(%w1, %w2 : {w_t}) : {rows_t} -> {rows_t} {{{BODY}
  %init = tensor.empty(%t) : {y_t}
  %acc = linalg.fill ins(%zero : f32) outs(%init : {y_t}) -> {y_t}
  %y = moe.combine %ye indices(%ids : {ids_t}) weights(%gates : {gates_t}) into %acc : {rows_t} -> {y_t}
  return %y : {y_t}
}}
"""
    args_spec = [ArgSpec("x", ("T", D), "f32")] + routing + [
        ArgSpec("w1", (E, D, H), "f32"), ArgSpec("w2", (E, H, D), "f32")]
    return text, Signature("layer", args_spec, [ArgSpec("y", ("T", D), "f32")])


def _ffn(rows, w1, w2):
    return np.maximum(rows @ w1, 0) @ w2


def reference(x, ids, gates, w1, w2, offsets=None):
    """The dialect's rules for untrusted routing, in NumPy."""
    tokens = x.shape[0]
    y = np.zeros_like(x)

    def rows_of(slot_ids):
        valid = (slot_ids >= 0) & (slot_ids < tokens)
        rows = np.zeros((len(slot_ids), D), np.float32)
        rows[valid] = x[slot_ids[valid]]
        return rows, valid

    if offsets is None:
        for e in range(E):
            rows, valid = rows_of(ids[e])
            out = _ffn(rows, w1[e], w2[e])
            for c in np.nonzero(valid)[0]:
                y[ids[e, c]] += gates[e, c] * out[c]
        return y
    n = len(ids)
    for e in range(E):
        start = min(max(0, int(np.max(offsets[:e + 1]))), n)
        end = min(max(start, int(offsets[e + 1])), n)
        rows, valid = rows_of(ids[start:end])
        out = _ffn(rows, w1[e], w2[e])
        for i in np.nonzero(valid)[0]:
            y[ids[start + i]] += gates[start + i] * out[i]
    return y


BAD_IDS = np.array([-1, -7, 2**31 - 1, -2**31], np.int64)

OFFSETS = {
    "decreasing": [0, 9, 3, 12, 7],
    "negative-and-past-end": [-5, 4, -100, 30, 1000],
    "all-past-end": [100, 200, 300, 400, 500],
    "huge": [2**31 - 1, -2**31, 2**31 - 1, 0, -1],
    "monotone-short": [2, 3, 3, 5, 6],
}


def _bad_ids(rng, shape, tokens):
    """Ids from -3 to T + 2 and extremes; each valid token at most once per
    row (as moe.route makes them: tiles of one expert may run in parallel)."""
    rows = np.atleast_2d(np.zeros(shape, np.int64))
    for row in rows:
        row[:] = rng.permutation(np.arange(-3, max(tokens + 3, row.size)))[:row.size]
    mask = rng.random(rows.shape) < 0.2
    rows[mask] = rng.choice(BAD_IDS, size=int(mask.sum()))
    return rows.reshape(shape).astype(np.int32)


def _weights(rng):
    w1 = (rng.standard_normal((E, D, H)) / np.sqrt(D)).astype(np.float32)
    w2 = (rng.standard_normal((E, H, D)) / np.sqrt(H)).astype(np.float32)
    return w1, w2


def _storage(pipeline):
    return next((s for s in ("i8", "i4") if f"-{s}" in pipeline), "f32")


def _weights_as_stored(pipeline, *weights):
    """The weights the reference is given: as they are, or the values of
    their int8 or 4-bit quantization for such a pipeline."""
    storage = _storage(pipeline)
    if storage == "i8":
        return tuple(R.dequantize_i8(*R.quantize_i8(w)) for w in weights)
    if storage == "i4":
        return tuple(R.dequantize_i4(*R.quantize_i4(w, 8), 8) for w in weights)
    return weights


@pytest.mark.parametrize("tokens", [0, 1, 9])
@pytest.mark.parametrize("case", sorted(OFFSETS))
@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_grouped_untrusted_offsets_and_ids(layer_fn, pipeline, case, tokens):
    fn = layer_fn(_function(grouped=True), pipeline)
    rng = np.random.default_rng(len(case) + tokens)
    n = 12
    x = rng.standard_normal((tokens, D)).astype(np.float32)
    ids = _bad_ids(rng, (n,), tokens)
    gates = rng.uniform(0.1, 1.0, n).astype(np.float32)
    offsets = np.array(OFFSETS[case], np.int64).astype(np.int32)
    w1, w2 = _weights(rng)
    got = fn(x, ids, gates, offsets, w1, w2)
    want = reference(x, ids, gates, *_weights_as_stored(pipeline, w1, w2), offsets)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tokens", [0, 1, 9])
@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_capacity_untrusted_ids(layer_fn, pipeline, tokens):
    fn = layer_fn(_function(grouped=False), pipeline)
    rng = np.random.default_rng(3 + tokens)
    x = rng.standard_normal((tokens, D)).astype(np.float32)
    ids = _bad_ids(rng, (E, 5), tokens)
    gates = rng.uniform(0.1, 1.0, (E, 5)).astype(np.float32)
    w1, w2 = _weights(rng)
    got = fn(x, ids, gates, w1, w2)
    want = reference(x, ids, gates, *_weights_as_stored(pipeline, w1, w2))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
