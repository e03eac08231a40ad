//===- MoEBase.td - MoE dialect definition -----------------*- tablegen -*-===//
//
// This file defines the `moe` dialect and the base classes of its ops and
// attributes.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEBASE_TD
#define MOE_DIALECT_MOE_IR_MOEBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def MoE_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::mlir::moe";
  let summary = "Mixture-of-Experts layers: routing, dispatch, experts, combine";
  let description = [{
    The `moe` dialect describes one Mixture-of-Experts layer as four ops on
    tensors:

    1. `moe.route` turns router scores into a routing decision. The routing
       policy (token choice, expert choice, Soft MoE, DeepSeek-style grouped
       routing) is an attribute, so a pass can rewrite one policy into
       another without touching the rest of the layer.
    2. `moe.dispatch` moves tokens to the experts (a gather for sparse
       routing, a weighted mix of all tokens for Soft MoE).
    3. `moe.expert` applies every expert to its inputs; its region is one
       expert written on tensors, and the per-expert weights are operands
       whose leading dimension is the number of experts `E`.
    4. `moe.combine` brings the expert outputs back to the tokens (a weighted
       scatter-add, or a weighted mix for Soft MoE) and accumulates them into
       a destination tensor.

    Routing results are plain tensors whose shapes carry `E`, the capacity
    `C` and the slot counts, so every consumer is verified against the
    routing it reads. Three layouts exist:

    * **capacity** (token choice with a `capacity_factor`, expert choice):
      token ids `[E, C]` (`-1` marks an empty slot) and gates `[E, C]`;
    * **grouped** (dropless token choice): token ids `[T*k]` sorted by
      expert, gates `[T*k]` and `E+1` offsets, as in CSR;
    * **soft** (Soft MoE): dispatch and combine weights, both `[T, E*S]`.

    Ties between equal scores always break toward the lower index, so the
    routing is bit-reproducible on every backend.

    Routing is total: any float scores give a valid layout. Scores are
    ranked by a strict total order in which NaN ranks below every number
    (`-inf` included), NaNs tie with each other, and ties go to the lower
    index (`-0.0` and `0.0` are equal). So every token of a token-choice
    layer still gets exactly `k` distinct experts, ids are in `[0, T)` (or
    `-1` for an empty slot), and dropless offsets run from `0` to `T*k`.
    Gates follow IEEE arithmetic: a softmax over a row holding NaN or `+inf`
    is NaN, and so are its gates, which makes that token's output NaN
    without touching any other token's.

    Consumers never turn routing data into an out-of-bounds access, whatever
    its source (`moe.route`, or tensors passed in by the caller): a token id
    outside `[0, T)` is an empty slot (a zero row for `moe.dispatch`,
    skipped by `moe.combine`), and expert `e` of a grouped layout owns rows
    `start = clamp(max(offsets[0..e]), 0, N)` up to
    `clamp(max(start, offsets[e+1]), 0, N)`: the offsets `moe.route` makes
    are kept as they are, and any others still give disjoint ranges within
    `[0, N)` (rows no expert owns contribute zero). One token named twice in
    one expert's slots is the caller's race when tiles run on threads.

    Sizes: every *static* size of the tensors the ops read and write (`T`,
    `D`, the hidden size `H` of the weights, `E`, `C`, `S`) must be at least
    1 -- a layer with no tokens, features, hidden units, experts or slots has
    nothing to compute, and the verifiers reject it naming the size that is
    0. A token count that is only known at run time is written `?` and may
    be 0 then. The sizes the routing implies (`T*k`, `C`, `E+1`) and every
    tensor's element count and size in bytes must fit int64; the verifiers
    name the product that overflows.
  }];
  let useDefaultAttributePrinterParser = 1;
  let extraClassDeclaration = [{
    void registerAttributes();
  }];
}

class MoE_Op<string mnemonic, list<Trait> traits = []>
    : Op<MoE_Dialect, mnemonic, traits>;

class MoE_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<MoE_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

#endif // MOE_DIALECT_MOE_IR_MOEBASE_TD
