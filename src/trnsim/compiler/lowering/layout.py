"""View and data-movement ops.

Views (view, permute, expand, slice, ...) change only how a buffer is read: they run as metadata and cost
nothing until a kernel needs the data in its natural layout (then `LowerContext.materialize` charges a copy).
Ops that write new buffers (clone, cat, pad, repeat, ...) are charged as DMA copies of their output.
"""

from __future__ import annotations

from typing import Any

import torch

from trnsim.compiler.lowering.context import LowerContext
from trnsim.compiler.lowering.table import LOWERINGS

VIEW_OPS = (
    "aten.view.default",
    "aten._unsafe_view.default",
    "aten.reshape.default",
    "aten.permute.default",
    "aten.transpose.int",
    "aten.t.default",
    "aten.unsqueeze.default",
    "aten.squeeze.dim",
    "aten.squeeze.dims",
    "aten.squeeze.default",
    "aten.expand.default",
    "aten.slice.Tensor",
    "aten.select.int",
    "aten.alias.default",
    "aten.detach.default",
    "aten.split.Tensor",
    "aten.split_with_sizes.default",
    "aten.unbind.int",
    "aten.lift_fresh_copy.default",
    "aten.unflatten.int",
    "aten.flatten.using_ints",
    "aten.contiguous.default",
    "aten._assert_tensor_metadata.default",
)

COPY_OPS = (
    "aten.clone.default",
    "aten.cat.default",
    "aten.stack.default",
    "aten.constant_pad_nd.default",
    "aten.repeat.default",
    "aten.repeat_interleave.self_int",
    "aten.index_select.default",
    "aten.copy.default",
    "aten.slice_scatter.default",  # x[..., a:b] = y into a new buffer (DeepSeek's MLA key assembly)
    "aten.full_like.default",  # a constant-filled buffer (zeros_like, full_like), charged as a copy of its size
)


def _resolve(name: str) -> Any:
    _, op, overload = name.split(".")
    return getattr(getattr(torch.ops.aten, op), overload)


def _view(name: str) -> Any:
    op = _resolve(name)
    strict_view = name in ("aten.view.default", "aten._unsafe_view.default")

    def lower(ctx: LowerContext, *args: Any, **kwargs: Any) -> Any:
        return _keep_bound(args[0], _view_of(ctx, *args, **kwargs))

    def _view_of(ctx: LowerContext, *args: Any, **kwargs: Any) -> Any:
        if strict_view and isinstance(args[0], torch.Tensor) and not args[0].is_contiguous():
            try:
                return op(*args, **kwargs)
            except RuntimeError:  # this view of a strided buffer needs the data copied first
                ctx.materialize(args[0])
                return torch.ops.aten.reshape.default(*args, **kwargs)
        return op(*args, **kwargs)

    return lower


def _keep_bound(src: Any, out: Any) -> Any:
    """A view of topk's indices still holds column numbers below the same bound (see moe.INDEX_BOUND)."""
    bound = getattr(src, "_trnsim_index_bound", None)
    if bound is not None and isinstance(out, torch.Tensor):
        out._trnsim_index_bound = bound  # type: ignore[attr-defined]
    return out


def _copy(name: str) -> Any:
    op = _resolve(name)
    what = name.split(".")[1]

    def lower(ctx: LowerContext, *args: Any, **kwargs: Any) -> Any:
        out = op(*args, **kwargs)
        if isinstance(out, torch.Tensor) and out.numel():
            ctx.move(out, what=what)
        return out

    return lower


for _name in VIEW_OPS:
    LOWERINGS[_name] = _view(_name)
for _name in COPY_OPS:
    LOWERINGS[_name] = _copy(_name)
