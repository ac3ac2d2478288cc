"""Norm-pattern pass: the RMSNorm Hugging Face decoders write out by hand (Llama, Mistral, Qwen2, ...)

    x32 = x.to(float32); y = x32 * rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps); out = w * y.to(x.dtype)

becomes one `rmsnorm` call, lowered to the library's rmsnorm kernel (one pass over x instead of six)."""

from __future__ import annotations

from typing import Any

import torch
import torch.fx

aten = torch.ops.aten


def rmsnorm(x: torch.Tensor, weight: torch.Tensor | None, eps: float, out_dtype: torch.dtype) -> torch.Tensor:
    """The pattern's meaning (used on the host and for shapes): fp32 statistics, output in out_dtype."""
    x32 = x.float()
    y = (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
    if weight is not None:
        y = weight * y
    return y.to(out_dtype)


def _is(node: Any, *targets: Any) -> bool:
    return isinstance(node, torch.fx.Node) and node.op == "call_function" and node.target in targets


def _strip_cast(node: Any) -> Any:
    return node.args[0] if _is(node, aten._to_copy.default) else node


def _match(rsqrt: torch.fx.Node) -> tuple[Any, float, torch.fx.Node] | None:
    """(x, eps, the y = x32 * rsqrt node) when `rsqrt` is the RMSNorm's."""
    add: Any = rsqrt.args[0]  # FX arguments are a wide union: matched structurally below
    if not _is(add, aten.add.Tensor, aten.add.Scalar) or not isinstance(add.args[1], float | int):
        return None
    mean: Any = add.args[0]
    if not _is(mean, aten.mean.dim) or list(mean.args[1]) not in ([-1],) or not (len(mean.args) > 2 and mean.args[2]):
        return None
    square: Any = mean.args[0]
    if not _is(square, aten.pow.Tensor_Scalar) or square.args[1] != 2:
        return None
    x32 = square.args[0]
    users = [u for u in rsqrt.users if _is(u, aten.mul.Tensor)]
    if len(users) != 1 or x32 not in users[0].args:
        return None
    return x32, float(add.args[1]), users[0]


def fuse_rmsnorm(gm: torch.fx.GraphModule) -> int:
    changed = 0
    for node in list(gm.graph.nodes):
        if not _is(node, aten.rsqrt.default):
            continue
        found = _match(node)
        if found is None:
            continue
        x32, eps, scaled = found
        x = _strip_cast(x32)
        end: torch.fx.Node = scaled
        weight = None
        cast = next(iter(scaled.users)) if len(scaled.users) == 1 else None
        if cast is not None and _is(cast, aten._to_copy.default):
            end = cast
        if len(end.users) == 1:
            mul = next(iter(end.users))
            if _is(mul, aten.mul.Tensor) and len(mul.args) == 2:
                other: Any = mul.args[1] if mul.args[0] is end else mul.args[0]
                if isinstance(other, torch.fx.Node) and other.op == "get_attr":
                    weight, end = other, mul
        val = end.meta.get("val")
        out_dtype = val.dtype if isinstance(val, torch.Tensor) else torch.float32
        with gm.graph.inserting_after(end):
            fused = gm.graph.call_function(rmsnorm, (x, weight, eps, out_dtype))
        fused.meta = dict(end.meta)
        end.replace_all_uses_with(fused)
        changed += 1
    gm.graph.eliminate_dead_code()
    return changed
