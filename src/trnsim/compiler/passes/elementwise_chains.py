"""Elementwise-fusion pass: a chain of elementwise ATen ops (unary functions, binary ops with a number or a
tensor that broadcasts to the chain's shape, float casts) whose intermediates have a single user becomes one
`elementwise_chain` node, lowered to the library's fused_chain kernel: one HBM read of each input and one
write of the result instead of a round trip per op.

Chains start at an elementwise op whose "primary" input has the chain's full shape; the chain's value then
flows from each op to the next as one of its operands. Two patterns are recognised first, because they are
DAGs rather than chains:
- Hugging Face rotary embedding, x * cos + cat(-x[..., D/2:], x[..., :D/2]) * sin -> `rope_embedding`,
  lowered to the library's rope kernel;
- the tanh GELU written out by hand (GPT-2's NewGELU), 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  -> aten.gelu(x, approximate="tanh"), so the matmul-epilogue pass can fold it into the linear before it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.fx

from trnsim.compiler.lowering.elementwise import BINARY, COMPARISONS, UNARY

aten = torch.ops.aten
FLOATS = (torch.float32, torch.bfloat16, torch.float16)
_CAST = aten._to_copy.default
_GELU = aten.gelu.default
_COMMUTATIVE = {"add", "multiply", "maximum", "minimum"}


# -- the fused ops' meaning (host fallback and shapes) ----------------------------------------------------
def elementwise_chain(
    x: torch.Tensor, steps: list[tuple[str, Any, bool, dict[str, Any]]], out_dtype: torch.dtype
) -> torch.Tensor:
    """Apply each step (aten op name, other operand or None, reverse, kwargs) to the running value, as eager
    does. Steps name their op ("aten.mul.Tensor") so that the graph stays printable."""
    value = x
    for name, other, reverse, kwargs in steps:
        target = _resolve(name)
        if other is None:
            value = target(value, **kwargs)
        elif reverse:
            value = target(other, value, **kwargs)
        else:
            value = target(value, other, **kwargs)
    return value.to(out_dtype)  # (already out_dtype: the pass takes it from the chain's last op)


def _resolve(name: str) -> Any:
    _, op, overload = name.split(".")
    return getattr(getattr(aten, op), overload)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_embedding(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x * cos + rotate_half(x) * sin (Hugging Face Llama's apply_rotary_pos_emb, one of q / k)."""
    return x * cos + rotate_half(x) * sin


# -- graph helpers ----------------------------------------------------------------------------------------
def _is(node: Any, *targets: Any) -> bool:
    return isinstance(node, torch.fx.Node) and node.op == "call_function" and node.target in targets


def _val(node: Any) -> Any:
    return node.meta.get("val") if isinstance(node, torch.fx.Node) else None


def _sole_user(node: torch.fx.Node) -> torch.fx.Node | None:
    return next(iter(node.users)) if len(node.users) == 1 else None


def _other(node: torch.fx.Node, this: Any) -> Any:
    """The operand of binary `node` that is not `this` (None when `this` is not exactly one of the two)."""
    a, b = node.args[0], node.args[1]
    if a is this and b is not this:
        return b
    if b is this and a is not this:
        return a
    return None


def _orders(node: torch.fx.Node) -> list[tuple[Any, Any]]:
    """A binary node's two operands in both orders (FX's argument union is matched structurally)."""
    a, b = node.args[0], node.args[1]
    return [(a, b), (b, a)]


def _close(value: Any, expected: float) -> bool:
    return isinstance(value, float | int) and math.isclose(float(value), expected, rel_tol=1e-6)


# -- rotary embedding -------------------------------------------------------------------------------------
def _slice_of(node: Any, x: Any, start: int, end: int) -> bool:
    """node is x[..., start:end] along the last dim (end may be the 'to the end' sentinel)."""
    if not _is(node, aten.slice.Tensor) or node.args[0] is not x or len(node.args) < 4:
        return False
    ndim = _val(x).dim()
    dim, s, e = node.args[1], node.args[2], node.args[3]
    return dim % ndim == ndim - 1 and s == start and (e == end or (isinstance(e, int) and e >= end))


def _rotated(node: Any) -> Any:
    """x when node is cat([-x[..., D/2:], x[..., :D/2]], -1) with single-user parts, else None."""
    if not _is(node, aten.cat.default) or len(node.args[0]) != 2:
        return None
    if len(node.args) > 1 and node.args[1] not in (-1, _val(node).dim() - 1):
        return None
    neg, low = node.args[0]
    if not _is(neg, aten.neg.default) or len(neg.users) != 1 or len(low.users) != 1:
        return None
    high = neg.args[0]
    x = low.args[0] if isinstance(low, torch.fx.Node) and low.args else None
    val = _val(x)
    if val is None or val.dim() != 4 or val.shape[-1] % 2 or len(high.users) != 1:
        return None
    d = int(val.shape[-1])
    if not (_slice_of(low, x, 0, d // 2) and _slice_of(high, x, d // 2, d)):
        return None
    return x


def _table(node: Any, x: Any) -> bool:
    """A cos/sin table that broadcasts over x's heads: [S, D], [1 or B, 1, S, D] of x's dtype."""
    val, xv = _val(node), _val(x)
    if val is None or val.dtype != xv.dtype:
        return False
    s, d = xv.shape[2], xv.shape[3]
    shape = tuple(val.shape)
    return shape == (s, d) or (len(shape) == 4 and shape[1:] == (1, s, d) and shape[0] in (1, xv.shape[0]))


def _rope_parts(add: torch.fx.Node) -> tuple[Any, Any, Any, list[torch.fx.Node]] | None:
    """(x, cos, sin, the nodes replaced) when `add` is x * cos + rotate_half(x) * sin."""
    if not _is(add, aten.add.Tensor) or len(add.args) != 2 or add.kwargs.get("alpha", 1) != 1:
        return None
    for m_cos, m_sin in _orders(add):
        if not (_is(m_cos, aten.mul.Tensor) and _is(m_sin, aten.mul.Tensor)):
            continue
        if len(m_cos.users) != 1 or len(m_sin.users) != 1:
            continue
        for rot, sin in _orders(m_sin):
            x = _rotated(rot)
            if x is None or x not in m_cos.args:
                continue
            cos = _other(m_cos, x)
            xv = _val(x)
            if cos is None or not _table(cos, x) or not _table(sin, x) or xv.dtype not in FLOATS:
                continue
            if tuple(_val(add).shape) != tuple(xv.shape) or _val(add).dtype != xv.dtype:
                continue
            neg, low = rot.args[0]
            return x, cos, sin, [add, m_cos, m_sin, rot, neg, low, neg.args[0]]
    return None


def fuse_rope(gm: torch.fx.GraphModule) -> int:
    changed = 0
    for node in list(gm.graph.nodes):
        found = _rope_parts(node) if _is(node, aten.add.Tensor) else None
        if found is None:
            continue
        x, cos, sin, _ = found
        with gm.graph.inserting_before(node):
            fused = gm.graph.call_function(rope_embedding, (x, cos, sin))
        fused.meta = dict(node.meta)
        node.replace_all_uses_with(fused)
        changed += 1
    gm.graph.eliminate_dead_code()
    return changed


# -- tanh GELU written out --------------------------------------------------------------------------------
def _scaled(node: Any, factor: float) -> Any:
    """y when node is y * factor (either order), single-user; else None."""
    if not _is(node, aten.mul.Tensor, aten.mul.Scalar):
        return None
    a, b = node.args[0], node.args[1]
    if _close(b, factor):
        return a
    if _close(a, factor):
        return b
    return None


def _gelu_tanh_input(out: torch.fx.Node) -> Any:
    """x when `out` is 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3))) with single-user parts."""
    if not _is(out, aten.mul.Tensor) or len(out.args) != 2:
        return None
    for half, one_plus in _orders(out):
        x = _scaled(half, 0.5)
        if x is None or not _is(one_plus, aten.add.Tensor, aten.add.Scalar) or not _close(one_plus.args[1], 1.0):
            continue
        tanh: Any = one_plus.args[0]
        if not _is(tanh, aten.tanh.default):
            continue
        inner = _scaled(tanh.args[0], math.sqrt(2.0 / math.pi))
        if not _is(inner, aten.add.Tensor) or x not in inner.args:
            continue
        cube = _scaled(_other(inner, x), 0.044715)
        if not _is(cube, aten.pow.Tensor_Scalar) or cube.args[0] is not x or not _close(cube.args[1], 3.0):
            continue
        parts = [half, one_plus, tanh, tanh.args[0], inner, _other(inner, x), cube]
        if all(len(p.users) == 1 for p in parts):
            return x
    return None


def fuse_gelu_tanh(gm: torch.fx.GraphModule) -> int:
    changed = 0
    for node in list(gm.graph.nodes):
        x = _gelu_tanh_input(node) if _is(node, aten.mul.Tensor) else None
        if x is None or _val(x) is None or _val(x).dtype not in FLOATS:
            continue
        with gm.graph.inserting_before(node):
            fused = gm.graph.call_function(_GELU, (x,), {"approximate": "tanh"})
        fused.meta = dict(node.meta)
        node.replace_all_uses_with(fused)
        changed += 1
    gm.graph.eliminate_dead_code()
    return changed


# -- generic chains ---------------------------------------------------------------------------------------
def _kind(node: Any) -> str | None:
    """'unary', 'binary', 'cast' for the elementwise ops a chain may hold, else None."""
    if not isinstance(node, torch.fx.Node) or node.op != "call_function":
        return None
    name = str(node.target)
    val = _val(node)
    if not isinstance(val, torch.Tensor) or val.dtype not in FLOATS:
        return None
    if name in UNARY or (node.target is _GELU and set(node.kwargs) <= {"approximate"}):
        return "unary"
    if name in BINARY and BINARY[name] not in COMPARISONS:
        if node.kwargs.get("alpha", 1) != 1 or node.kwargs.get("rounding_mode") is not None or len(node.args) != 2:
            return None
        return "binary"
    if node.target is _CAST and set(node.kwargs) <= {"dtype"} and len(node.args) == 1:
        src = _val(node.args[0])
        return "cast" if isinstance(src, torch.Tensor) and src.dtype in FLOATS else None
    return None


def _fits(operand: Any, shape: tuple[int, ...]) -> bool:
    """A number, or a float tensor that broadcasts to `shape` without changing it."""
    if isinstance(operand, bool):
        return False
    if isinstance(operand, int | float):
        return True
    val = _val(operand)
    if not isinstance(val, torch.Tensor) or (val.dtype not in FLOATS and val.dim() > 0):
        return False
    try:
        return tuple(torch.broadcast_shapes(tuple(val.shape), shape)) == shape
    except RuntimeError:
        return False


def _step(node: torch.fx.Node, value: Any, shape: tuple[int, ...]) -> tuple[Any, Any, bool, dict[str, Any]] | None:
    """The chain step node applies to the running `value` (None if it cannot join the chain)."""
    kind = _kind(node)
    if kind is None or tuple(_val(node).shape) != shape:
        return None
    if kind in ("unary", "cast"):
        return (str(node.target), None, False, dict(node.kwargs)) if node.args[0] is value else None
    a, b = node.args[0], node.args[1]
    if a is value and b is not value:
        other, reverse = b, False
    elif b is value and a is not value:
        other, reverse = a, True
    else:
        return None
    if not _fits(other, shape):
        return None
    return str(node.target), other, reverse, dict(node.kwargs)


def _start(node: torch.fx.Node) -> tuple[Any, tuple[Any, Any, bool, dict[str, Any]]] | None:
    """(primary input, first step) for a chain starting at `node`: the primary has the chain's full shape."""
    kind = _kind(node)
    if kind is None:
        return None
    shape = tuple(_val(node).shape)
    candidates = [node.args[0]] if kind in ("unary", "cast") else [node.args[0], node.args[1]]
    for x in candidates:
        xv = _val(x)
        if isinstance(xv, torch.Tensor) and xv.dtype in FLOATS and tuple(xv.shape) == shape:
            step = _step(node, x, shape)
            if step is not None:
                return x, step
    return None


def _kernel_steps(steps: list[tuple[Any, Any, bool, dict[str, Any]]]) -> int:
    """How many on-chip ops the steps are (casts only set the dtype of the result)."""
    return sum(1 for name, *_ in steps if name != str(_CAST))


def fuse_elementwise_chains(gm: torch.fx.GraphModule) -> int:
    """Merge maximal single-user chains of >= 2 elementwise ops into one elementwise_chain node each."""
    changed = 0
    for node in list(gm.graph.nodes):
        if getattr(node, "_erased", False) or not node.users:  # absorbed into an earlier chain
            continue
        begun = _start(node)
        if begun is None:
            continue
        x, first = begun
        shape = tuple(_val(node).shape)
        steps, end = [first], node
        while True:
            user = _sole_user(end)
            step = _step(user, end, shape) if user is not None else None
            if step is None:
                break
            steps.append(step)
            end = user
        if len(steps) < 2 or _kernel_steps(steps) < 1:
            continue
        with gm.graph.inserting_before(end):
            fused = gm.graph.call_function(elementwise_chain, (x, steps, _val(end).dtype))
        fused.meta = dict(end.meta)
        end.replace_all_uses_with(fused)
        gm.graph.eliminate_dead_code()
        changed += 1
    return changed
