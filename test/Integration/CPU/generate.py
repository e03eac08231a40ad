#!/usr/bin/python3
"""Writes the mlir-runner integration tests of this directory.

Each test holds one MoE layer (built by moe_mlir.builder), a route-only
function, and a @main that runs both on fixed inputs and prints:
  - the layer output, rounded to 3 decimals (2 for bf16; values are kept
    away from rounding boundaries so the text is stable);
  - the token ids of the routing (exact integers) and, for sparse policies,
    the offsets or the gates rounded to 4 decimals.
The CHECK lines are the NumPy reference's values, printed the way
printMemrefF32/I32 print them. Run: /usr/bin/python3 generate.py

Each case is written twice: here for the CPU pipeline (and the GPU mapping
emulated on the host), and in ../GPU for moe-gpu-pipeline under mlir-runner
with libMoECUDARuntime.so, where @main copies the inputs to device buffers
(gpu.alloc + gpu.memcpy) and the printed results back to host buffers.
"""

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "python"))

from moe_mlir import builder  # noqa: E402
from moe_mlir import reference as R  # noqa: E402
from moe_mlir.policies import ExpertChoice, Layer, Soft, TokenChoice  # noqa: E402

F32 = np.float32
TOKENS = 6

CASES = {
    "token-choice-capacity": ("Top-2 token choice, capacity factor 1.0, position order, ReLU FFN",
                              Layer(8, 16, 4, TokenChoice(2, capacity_factor=1.0), "relu")),
    "token-choice-priority": ("Top-2, capacity factor 0.75 (overflow), priority order, normalized, GELU",
                              Layer(8, 16, 4, TokenChoice(2, capacity_factor=0.75, order="priority",
                                                          normalize=True), "gelu")),
    "token-choice-dropless": ("Mixtral-like: top-2 dropless, normalized, SwiGLU",
                              Layer(8, 16, 4, TokenChoice(2, normalize=True), "swiglu")),
    "token-choice-dropless-bf16": ("Mixtral-like in bf16 (f32 accumulation)",
                                   Layer(8, 16, 4, TokenChoice(2, normalize=True), "swiglu", "bf16")),
    "token-choice-sigmoid": ("Top-3 sigmoid scores, normalized, scaled by 2.5, capacity 1.5, SiLU",
                             Layer(8, 16, 6, TokenChoice(3, capacity_factor=1.5, score="sigmoid",
                                                         normalize=True, routed_scaling_factor=2.5),
                                   "silu")),
    "deepseek-grouped": ("DeepSeek-V3 style: sigmoid, bias, 4 groups keep 2, top-2, scaled, SwiGLU",
                         Layer(8, 8, 8, TokenChoice(2, score="sigmoid", normalize=True, n_group=4,
                                                    topk_group=2, routed_scaling_factor=2.5,
                                                    bias=True), "swiglu")),
    "expert-choice": ("Expert choice, capacity factor 2.0, SwiGLU",
                      Layer(8, 16, 4, ExpertChoice(2.0), "swiglu")),
    "soft": ("Soft MoE, 4 experts x 2 slots, GELU", Layer(8, 16, 4, Soft(2), "gelu")),
}

# Layers run through a model pass first: (description, layer, passes, the
# layer whose reference the result must match).
PASS_CASES = {
    "token-to-expert-choice": (
        "Top-2 token choice (capacity 1.0), converted by -moe-token-to-expert-choice: "
        "the expert-choice layer with capacity factor 2.0",
        Layer(8, 16, 4, TokenChoice(2, capacity_factor=1.0), "swiglu"),
        "-moe-token-to-expert-choice",
        Layer(8, 16, 4, ExpertChoice(2.0), "swiglu")),
    "soft-to-dense": (
        "Soft MoE with normalized logits (learned scale), made dense by -moe-soft-to-dense",
        Layer(8, 16, 4, Soft(2, normalize=True), "gelu"),
        "-moe-soft-to-dense",
        Layer(8, 16, 4, Soft(2, normalize=True), "gelu")),
}


def fmt(value):
    """A float as printMemrefF32 prints it (ostream, 6 significant digits)."""
    text = f"{float(value):g}"
    return text


def dense(array, dtype):
    def rec(a):
        if a.ndim == 1:
            return "[" + ", ".join(repr(float(v)) if dtype != "i32" else str(int(v)) for v in a) + "]"
        return "[" + ", ".join(rec(r) for r in a) + "]"
    return f"dense<{rec(np.asarray(array))}>"


def tensor(shape, dtype):
    return "tensor<" + "x".join(str(d) for d in shape) + f"x{dtype}>"


def rounded(values, decimals):
    scale = F32(10 ** decimals)
    return (np.round(values.astype(F32) * scale) / scale).astype(F32)


def stable(values, decimals):
    """Whether rounding to `decimals` is far from a tie on every value."""
    scaled = np.abs(values.astype(np.float64)) * 10 ** decimals
    return np.all(np.abs(scaled - np.floor(scaled) - 0.5) > 1e-2)


def inputs(layer, seed):
    """Inputs by argument name; values are small multiples of 1/8, 1/16 or
    1/32 so that they are exact in bf16 and print exactly."""
    rng = np.random.default_rng(seed)
    d, cols = layer.model_dim, layer.router_columns
    q = lambda shape, s=8: (rng.integers(-8, 9, size=shape) / s).astype(F32)  # exact in bf16
    x = q((TOKENS, d))
    router = q((d, cols), 16)
    weights = [q(s, 16) for s in layer.weight_shapes()]
    values = {"x": x, "router": router}
    if isinstance(layer.policy, TokenChoice) and layer.policy.bias:
        values["bias"] = q((layer.experts,), 32)
    if isinstance(layer.policy, Soft) and layer.policy.normalize:
        values["scale"] = np.array([4.0], F32)
    return values, weights


def print_block(lines, array, kind, decimals=None):
    """CHECK lines for printMemref of a 1-D or 2-D array."""
    flat = array if array.ndim == 2 else array[None, :]
    cell = (lambda v: str(int(v))) if kind == "i32" else fmt
    rows = ["[" + ", ".join(cell(v) for v in row) + "]" for row in flat]
    lines.append(f"// CHECK: rank = {array.ndim} offset = 0 sizes = [{', '.join(map(str, array.shape))}]")
    if array.ndim == 1:
        lines.append(f"// CHECK-NEXT: {rows[0]}")
        return
    # `[[` would open a FileCheck variable.
    lines.append(f"// CHECK-NEXT: {{{{\\[}}}}{rows[0]},")
    for i, row in enumerate(rows[1:], 1):
        end = "]" if i == len(rows) - 1 else ","
        lines.append(f"// CHECK-NEXT: {row}{end}")


def memref(tensor_type):
    return tensor_type.replace("tensor<", "memref<", 1)


def to_device(out, value, tensor_type):
    """Copies a static host tensor into a device buffer; returns the tensor."""
    v, m = value.lstrip("%"), memref(tensor_type)
    out += [
        f"  %{v}_hb = bufferization.to_buffer {value} : {tensor_type} to {m}",
        f"  %{v}_db = gpu.alloc () : {m}",
        f"  gpu.memcpy %{v}_db, %{v}_hb : {m}, {m}",
        f"  %{v}_d = bufferization.to_tensor %{v}_db restrict : {m} to {tensor_type}",
    ]
    return f"%{v}_d"


def to_host(out, value, tensor_type):
    """Copies a device tensor into a host buffer; returns the host tensor."""
    v, m = value.lstrip("%"), memref(tensor_type)
    out.append(f"  %{v}_db = bufferization.to_buffer {value} : {tensor_type} to {m}")
    sizes = []
    for k, dim in enumerate(tensor_type[len("tensor<"):-1].split("x")[:-1]):
        if dim == "?":
            out.append(f"  %{v}_i{k} = arith.constant {k} : index")
            out.append(f"  %{v}_n{k} = memref.dim %{v}_db, %{v}_i{k} : {m}")
            sizes.append(f"%{v}_n{k}")
    out += [
        f"  %{v}_hb = memref.alloc({', '.join(sizes)}) : {m}",
        f"  gpu.memcpy %{v}_hb, %{v}_db : {m}, {m}",
        f"  %{v}_h = bufferization.to_tensor %{v}_hb restrict : {m} to {tensor_type}",
    ]
    return f"%{v}_h"


def generate(name, description, layer, passes="", reference=None, gpu=False):
    reference = reference or layer
    decimals = 2 if layer.dtype == "bf16" else 3
    for seed in range(100):
        values, weights = inputs(layer, seed)
        x, router, bias = values["x"], values["router"], values.get("bias")
        y, routing = R.layer_forward(reference, x, router, weights, bias, values.get("scale"))
        if stable(y, decimals) and stable(routing[1], 4):
            break
    else:
        raise RuntimeError(f"{name}: no seed keeps the printed values off rounding ties")
    logits = R.matmul_seq(x, router)

    layer_text, sig = builder.build_layer(layer, "moe_layer")
    route_text, route_sig = builder.build_route(layer.policy, layer.experts, name="route")
    # The route-only function shows the routing the layer ran with.
    _, shown_sig = builder.build_route(reference.policy, layer.experts, name="route")
    dt, d = layer.dtype, layer.model_dim
    pre = passes + " " if passes else ""
    if gpu:
        out = [
            "// REQUIRES: cuda-runner",
            "// moe-gpu-pipeline's output run by mlir-runner on this machine's GPU; any failed",
            "// CUDA call ends the run (MOE_CUDA_FATAL_ERRORS).",
            f"// RUN: moe-opt %s {pre}--moe-gpu-pipeline | env MOE_CUDA_FATAL_ERRORS=1 \\",
            "// RUN:   mlir-runner -e main -entry-point-result=void \\",
            "// RUN:   --shared-libs=%moe_cuda_runtime,%mlir_c_runner_utils,%mlir_runner_utils | FileCheck %s",
            "",
        ]
    else:
        out = [
            f"// RUN: moe-opt %s {pre}--moe-cpu-pipeline | mlir-runner -e main -entry-point-result=void \\",
            "// RUN:   --shared-libs=%mlir_c_runner_utils,%mlir_runner_utils,%libomp | FileCheck %s",
            "// The GPU mapping of moe-gpu-pipeline, run on the host:",
            f"// RUN: moe-opt %s {pre}--moe-gpu-emulation-pipeline='tile-rows=3 max-blocks=5' \\",
            "// RUN:   | mlir-runner -e main -entry-point-result=void \\",
            "// RUN:   --shared-libs=%mlir_c_runner_utils,%mlir_runner_utils | FileCheck %s",
            "",
        ]
    out += [
        f"// {description}; T = {TOKENS} tokens passed as a dynamic size.",
        "// Generated by generate.py from the NumPy reference; do not edit by hand.",
        "",
        layer_text, route_text,
        "func.func @main() attributes {moe.host} {",
    ]
    args = []
    by_name = dict(values, **{spec.name: w for spec, w in zip(sig.args[-len(weights):], weights)})
    for spec in sig.args:
        value = by_name[spec.name]
        shape = (TOKENS,) + tuple(spec.shape[1:]) if spec.name == "x" else spec.shape
        static_t = tensor(shape, spec.dtype)
        arg_t = tensor(spec.shape, spec.dtype).replace("T", "?")
        out.append(f"  %{spec.name}_s = arith.constant {dense(value, spec.dtype)} : {static_t}")
        source = to_device(out, f"%{spec.name}_s", static_t) if gpu else f"%{spec.name}_s"
        if static_t != arg_t:
            out.append(f"  %{spec.name} = tensor.cast {source} : {static_t} to {arg_t}")
            source = f"%{spec.name}"
        args.append((source, arg_t))
    y_t = f"tensor<?x{d}x{dt}>"
    args_by_name = {spec.name: a for spec, (a, _) in zip(sig.args, args)}
    arg_names = ", ".join(a for a, _ in args)
    arg_types = ", ".join(t for _, t in args)
    out.append(f"  %y = call @moe_layer({arg_names}) : ({arg_types}) -> {y_t}")
    y_v = to_host(out, "%y", y_t) if gpu else "%y"
    out += [
        "  %c0 = arith.constant 0 : index",
        f"  %t = tensor.dim {y_v}, %c0 : {y_t}",
        f"  %re = tensor.empty(%t) : tensor<?x{d}xf32>",
        f"  %round_scale = arith.constant {10.0 ** decimals} : f32",
        "  %r = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],",
        "                       iterator_types = [\"parallel\", \"parallel\"]}",
        f"      ins({y_v} : {y_t}) outs(%re : tensor<?x{d}xf32>) {{",
        f"  ^bb0(%v: {dt}, %unused: f32):",
    ]
    # bf16 outputs are widened to print; f32 ones pass through (max(v, v) = v).
    out.append("    %w = arith.extf %v : bf16 to f32" if dt == "bf16" else "    %w = arith.maximumf %v, %v : f32")
    out += [
        "    %m = arith.mulf %w, %round_scale : f32",
        "    %n = math.roundeven %m : f32",
        "    %q = arith.divf %n, %round_scale : f32",
        "    linalg.yield %q : f32",
        f"  }} -> tensor<?x{d}xf32>",
        f"  %ru = tensor.cast %r : tensor<?x{d}xf32> to tensor<*xf32>",
        "  call @printMemrefF32(%ru) : (tensor<*xf32>) -> ()",
    ]
    # The route alone, on the reference's logits.
    cols = logits.shape[1]
    out.append(f"  %l_s = arith.constant {dense(logits, 'f32')} : {tensor(logits.shape, 'f32')}")
    l_source = to_device(out, "%l_s", tensor(logits.shape, "f32")) if gpu else "%l_s"
    out.append(f"  %l = tensor.cast {l_source} : {tensor(logits.shape, 'f32')} to tensor<?x{cols}xf32>")
    route_args = ["%l"] + ([args_by_name["bias"]] if bias is not None else [])
    route_arg_types = [f"tensor<?x{cols}xf32>"] + ([tensor(bias.shape, "f32")] if bias is not None else [])
    res_types = [tensor(r.shape, r.dtype).replace("C", "?").replace("N", "?").replace("T", "?")
                 for r in route_sig.results]
    shown_types = [tensor(r.shape, r.dtype).replace("C", "?").replace("N", "?").replace("T", "?")
                   for r in shown_sig.results]
    assert shown_types == res_types, f"{name}: the pass must keep the route's result types"
    names = [f"%o{i}" for i in range(len(res_types))]
    out.append(f"  {', '.join(names)} = call @route({', '.join(route_args)}) : "
               f"({', '.join(route_arg_types)}) -> ({', '.join(res_types)})")
    if gpu:
        names = [to_host(out, n, t) for n, t in zip(names, res_types)]
    printed = []
    for i, (spec, value) in enumerate(zip(route_sig.results, routing)):
        if spec.dtype == "i32":
            out.append(f"  %u{i} = tensor.cast {names[i]} : {res_types[i]} to tensor<*xi32>")
            out.append(f"  call @printMemrefI32(%u{i}) : (tensor<*xi32>) -> ()")
            printed.append((value, "i32"))
        elif not isinstance(layer.policy, Soft):
            # Gates, rounded to 4 decimals.
            rank = len(spec.shape)
            dims = ", ".join(["d0", "d1"][:rank])
            ranked = res_types[i]
            parallel = ", ".join(['"parallel"'] * rank)
            for k in range(rank):
                out.append(f"  %gi{k} = arith.constant {k} : index")
                out.append(f"  %gd{k} = tensor.dim {names[i]}, %gi{k} : {ranked}")
            dyn_sizes = [f"%gd{k}" for k, dim in enumerate(ranked[7:-1].split("x")[:rank]) if dim == "?"]
            out.append(f"  %ge = tensor.empty({', '.join(dyn_sizes)}) : {ranked}")
            out.append("  %tenk = arith.constant 10000.0 : f32")
            out.append(f"  %gr = linalg.generic {{indexing_maps = [affine_map<({dims}) -> ({dims})>, "
                       f"affine_map<({dims}) -> ({dims})>], iterator_types = [{parallel}]}}")
            out.append(f"      ins({names[i]} : {ranked}) outs(%ge : {ranked}) {{")
            out.append("  ^bb0(%gv: f32, %gu: f32):")
            out.append("    %gm = arith.mulf %gv, %tenk : f32")
            out.append("    %gn = math.roundeven %gm : f32")
            out.append("    %gq = arith.divf %gn, %tenk : f32")
            out.append("    linalg.yield %gq : f32")
            out.append(f"  }} -> {ranked}")
            out.append(f"  %gu{i} = tensor.cast %gr : {ranked} to tensor<*xf32>")
            out.append(f"  call @printMemrefF32(%gu{i}) : (tensor<*xf32>) -> ()")
            printed.append((rounded(value, 4), "f32"))
    out += [
        "  return",
        "}",
        "func.func private @printMemrefF32(tensor<*xf32>)",
        "func.func private @printMemrefI32(tensor<*xi32>)",
        "",
        f"// The layer output, rounded to {decimals} decimals.",
    ]
    print_block(out, rounded(y, decimals), "f32")
    out.append("// The routing.")
    for value, kind in printed:
        print_block(out, value, kind)
    folder = HERE.parent / "GPU" if gpu else HERE
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.mlir").write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    for gpu in (False, True):
        where = "../GPU/" if gpu else ""
        for case, (description, layer) in CASES.items():
            generate(case, description, layer, gpu=gpu)
            print(f"wrote {where}{case}.mlir")
        for case, (description, layer, passes, reference) in PASS_CASES.items():
            generate(case, description, layer, passes, reference, gpu=gpu)
            print(f"wrote {where}{case}.mlir")
