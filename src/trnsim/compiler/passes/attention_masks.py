"""Attention-mask pass: an SDPA whose (folded, constant) mask is all-true or exactly causal becomes a plain
or causal attention, so it lowers to the flash-attention kernel instead of matmul + softmax + matmul."""

from __future__ import annotations

import torch
import torch.fx

SDPA = torch.ops.aten.scaled_dot_product_attention.default


def _constant(gm: torch.fx.GraphModule, node: object) -> torch.Tensor | None:
    if isinstance(node, torch.fx.Node) and node.op == "get_attr":
        value = getattr(gm, str(node.target), None)
        if isinstance(value, torch.Tensor) and value.device.type == "cpu":
            return value
    return None


def _kind(mask: torch.Tensor) -> str:
    """'none' when the mask hides nothing, 'causal' when it hides exactly the future keys, else 'other'."""
    if mask.dim() < 2:
        return "other"
    s_q, s_kv = mask.shape[-2], mask.shape[-1]
    allowed = mask if mask.dtype == torch.bool else mask == 0
    if mask.dtype != torch.bool and not torch.all((mask == 0) | torch.isneginf(mask)):
        return "other"
    if bool(allowed.all()):
        return "none"
    if s_q == s_kv and bool((allowed == torch.ones(s_q, s_kv, dtype=torch.bool).tril()).all()):
        return "causal"
    return "other"


def simplify_attention_masks(gm: torch.fx.GraphModule) -> int:
    changed = 0
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target is not SDPA or len(node.args) < 4:
            continue
        mask = _constant(gm, node.args[3])
        if mask is None:
            continue
        kind = _kind(mask)
        if kind == "other":
            continue
        args = list(node.args)
        args[3] = None
        if kind == "causal":
            while len(args) < 6:
                args.append(0.0 if len(args) == 4 else False)
            args[5] = True
        node.args = tuple(args)
        changed += 1
    gm.graph.eliminate_dead_code()
    return changed
