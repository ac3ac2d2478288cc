"""The lowering table: ATen overload name -> the function that runs that op on the simulated chip.

A lowering is `fn(ctx: LowerContext, *args, **kwargs) -> value`, called with the node's evaluated
arguments (real tensors in functional mode, meta tensors in timing mode). It launches library kernels through
`ctx.kernel(...)` and raises `Unsupported` for arguments it cannot handle, which sends that call to the host.
Users add entries with `register_lowering` (see the compiler docs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Lowering = Callable[..., Any]

LOWERINGS: dict[str, Lowering] = {}


def op_name(target: Any) -> str:
    """'aten.addmm.default' for an OpOverload, the function's qualified name for fused ops."""
    if hasattr(target, "_schema") or type(target).__name__ == "OpOverload":
        return str(target)
    name = getattr(target, "__name__", None) or str(target)
    module = getattr(target, "__module__", "") or ""
    return f"{module.rsplit('.', 1)[-1]}.{name}" if module.startswith("trnsim") else name


def register_lowering(op: Any, fn: Lowering | None = None) -> Any:
    """Add or replace the lowering of `op` (an OpOverload such as torch.ops.aten.gelu.default, or its name).

    Usable as a decorator: `@register_lowering(torch.ops.aten.gelu.default)`.
    """
    key = op if isinstance(op, str) else op_name(op)

    def add(f: Lowering) -> Lowering:
        LOWERINGS[key] = f
        return f

    return add(fn) if fn is not None else add


def lowering_for(target: Any) -> Lowering | None:
    return LOWERINGS.get(op_name(target))


def registered(*names: str) -> Callable[[Lowering], Lowering]:
    """Decorator for the built-in lowerings: one function, several overload names."""

    def add(f: Lowering) -> Lowering:
        for n in names:
            LOWERINGS[n] = f
        return f

    return add
