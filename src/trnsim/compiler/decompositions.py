"""The decomposition table used when capturing: PyTorch's Core-ATen table minus the ops trnsim lowers whole
(a linear stays one matmul-with-epilogue kernel, attention one flash-attention kernel, and so on)."""

from __future__ import annotations

from typing import Any

import torch

aten = torch.ops.aten

KEEP_WHOLE = (
    aten.linear.default,
    aten.scaled_dot_product_attention.default,
    aten.layer_norm.default,
    aten.rms_norm.default,
    aten.softmax.int,
    aten._softmax.default,
    aten.gelu.default,
    aten.silu.default,
    aten.embedding.default,
)


def decomposition_table() -> Any:
    table = torch.export.default_decompositions()
    for op in KEEP_WHOLE:
        table.pop(op, None)
    return table
