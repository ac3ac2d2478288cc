"""GQA pass: Hugging Face models repeat K/V heads before attention (repeat_kv: unsqueeze, expand, clone,
view). The flash-attention kernel reads each KV group once for all its query heads, so the repeat is
removed and the attention marked enable_gqa - no copy of K/V, and no extra HBM traffic for it."""

from __future__ import annotations

import torch
import torch.fx

aten = torch.ops.aten
SDPA = aten.scaled_dot_product_attention.default
_VIEWS = (aten.view.default, aten._unsafe_view.default, aten.reshape.default)
_COPIES = (aten.clone.default,)


def _unrepeated(node: object) -> torch.fx.Node | None:
    """k if `node` is view(clone(expand(unsqueeze(k, 2)))) repeating heads of a [B, Hkv, S, D] tensor."""
    if not isinstance(node, torch.fx.Node) or node.target not in _VIEWS:
        return None
    src = node.args[0]
    if isinstance(src, torch.fx.Node) and src.target in _COPIES:
        src = src.args[0]
    if not isinstance(src, torch.fx.Node) or src.target is not aten.expand.default:
        return None
    unsq = src.args[0]
    if not isinstance(unsq, torch.fx.Node) or unsq.target is not aten.unsqueeze.default or unsq.args[1] != 2:
        return None
    base = unsq.args[0]
    val = base.meta.get("val") if isinstance(base, torch.fx.Node) else None
    if val is None or val.dim() != 4:
        return None
    return base  # type: ignore[return-value]


def fold_gqa_repeat(gm: torch.fx.GraphModule) -> int:
    changed = 0
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target is not SDPA:
            continue
        k, v = _unrepeated(node.args[1]), _unrepeated(node.args[2])
        if k is None or v is None:
            continue
        args = list(node.args)
        args[1], args[2] = k, v
        node.args = tuple(args)
        node.kwargs = {**node.kwargs, "enable_gqa": True}
        changed += 1
    gm.graph.eliminate_dead_code()
    return changed
