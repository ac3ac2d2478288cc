"""The kernel library: NKI kernels (current API style) the compiler lowers PyTorch ops to.

Each export is an `@nki.jit` kernel taking arrays in their natural layout, so
`nki.simulate(trnsim.kernels.matmul)(a, b)` computes `a @ b` and `trnsim.nki.profile(...)` times it.
Modules load on first use.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

# export name -> module under trnsim.kernels
_EXPORTS = {
    "matmul": "matmul",
    "batched_matmul": "matmul",
    "linear": "matmul",
    "unary": "elementwise",
    "binary": "elementwise",
    "fused_chain": "elementwise",
    "reduce_last": "reductions",
    "softmax": "reductions",
    "layernorm": "reductions",
    "rmsnorm": "reductions",
    "transpose": "transpose",
    "embedding": "embedding",
    "rope": "rope",
    "flash_attention": "attention",
    "decode_attention": "attention",
    "conv2d": "conv",
    "max_pool2d": "conv",
    "avg_pool2d": "conv",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"trnsim.kernels has no kernel {name!r}; kernels: {', '.join(__all__)}")
    kernel = getattr(importlib.import_module(f"trnsim.kernels.{module}"), name)
    # Importing trnsim.kernels.<module> binds the submodule as a package attribute; the kernel of the same
    # name (matmul, transpose) must win, so bind every export of that module now.
    for export, home in _EXPORTS.items():
        if home == module:
            globals()[export] = getattr(sys.modules[f"trnsim.kernels.{module}"], export)
    return kernel
