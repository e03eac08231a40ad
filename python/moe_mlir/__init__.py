"""moe-mlir from Python: the NumPy reference, an IR builder and a runner.

- ``reference``: the routing and layer semantics of the ``moe`` dialect in
  NumPy, the oracle every lowering is tested against.
- ``builder``: emits a whole MoE layer as ``moe`` IR text.
- ``runner``: compiles IR to a shared library and calls it with NumPy arrays.
"""
