"""`nki.isa` wrappers: selection, iota, predicated copies and gathers (re-exported by nki/isa.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.errors import ShapeMismatchError, UsageError
from trnsim.isa.alu import BINARY_OPS
from trnsim.nki import (
    emit_gather,
    emit_predicated,
    emit_range_select,
    emit_select,
    emit_select_reduce,
)
from trnsim.nki.context import user_location
from trnsim.nki.isa_enums import (
    engine,
    pattern_values,
    reduce_cmd,
    to_engine,
)
from trnsim.nki.tensor import NkiTensor


def iota(dst: NkiTensor, pattern: Any, offset: int = 0, channel_multiplier: int = 0, name: Any = None) -> None:
    vals = pattern_values(tuple(dst.shape), pattern, offset, channel_multiplier)
    if vals.size != dst.size:
        raise ShapeMismatchError(
            f"iota pattern covers {vals.size // dst.shape[0]} elements per partition, dst has {dst.free_size()}",
            user_location(),
            rule="shape",
        )
    emit_select.iota(dst, vals.reshape(dst.shape))


_CMP_OPS = ("equal", "not_equal", "greater", "greater_equal", "less", "less_equal")


def affine_select(
    dst: NkiTensor,
    pattern: Any,
    channel_multiplier: int,
    on_true_tile: NkiTensor,
    on_false_value: float,
    cmp_op: Any = None,
    offset: int = 0,
    name: Any = None,
) -> None:
    vals = pattern_values(tuple(dst.shape), pattern, offset, channel_multiplier).reshape(dst.shape)
    cmp = "equal" if cmp_op is None else getattr(cmp_op, "nki_name", None) or getattr(cmp_op, "__name__", cmp_op)
    if cmp not in _CMP_OPS:
        raise UsageError(
            f"affine_select cmp_op must be a comparison ({', '.join(_CMP_OPS)}), got {cmp_op!r}",
            user_location(),
            rule="op",
        )
    pred = BINARY_OPS[cmp](vals, np.zeros_like(vals)) != 0
    emit_select.affine_select(dst, pred, on_true_tile, float(on_false_value))


def select(
    dst: NkiTensor,
    predicate: NkiTensor,
    on_true: NkiTensor,
    on_false: Any,
    engine: Any = engine.unknown,
    name: Any = None,
) -> None:
    emit_select.select(dst, predicate, on_true, on_false, engine=to_engine(engine))


def select_reduce(
    dst: NkiTensor,
    predicate: NkiTensor,
    on_true: NkiTensor,
    on_false: Any,
    reduce_res: NkiTensor | None = None,
    reduce_cmd: Any = reduce_cmd.idle,
    reduce_op: Any = "maximum",
    reverse_pred: bool = False,
    name: Any = None,
) -> None:
    emit_select_reduce.select_reduce(
        dst,
        predicate,
        on_true,
        on_false,
        reduce_res=reduce_res,
        reduce_cmd=reduce_cmd.name if hasattr(reduce_cmd, "name") else str(reduce_cmd),
        reduce_op=reduce_op,
        reverse_pred=reverse_pred,
    )


_FP32_MIN = float(np.finfo(np.float32).min)  # range_select's only legal on_false_value


def range_select(
    dst: NkiTensor,
    on_true_tile: NkiTensor,
    comp_op0: Any,
    comp_op1: Any,
    bound0: NkiTensor,
    bound1: NkiTensor,
    reduce_cmd: Any = reduce_cmd.reset_reduce,
    reduce_res: NkiTensor | None = None,
    reduce_op: Any = "maximum",
    range_start: Any = 0,
    on_false_value: Any = _FP32_MIN,
    name: Any = None,
) -> None:
    emit_range_select.range_select(
        dst,
        on_true_tile,
        comp_op0,
        comp_op1,
        bound0,
        bound1,
        reduce_cmd=reduce_cmd.name if hasattr(reduce_cmd, "name") else str(reduce_cmd),
        reduce_res=reduce_res,
        reduce_op=reduce_op,
        range_start=range_start,
        on_false_value=on_false_value,
    )


def nc_n_gather(dst: NkiTensor, data: NkiTensor, indices: NkiTensor, name: Any = None) -> None:
    emit_gather.nc_n_gather(dst, data, indices)


def sequence_bounds(dst: NkiTensor, segment_ids: NkiTensor, name: Any = None) -> None:
    emit_gather.sequence_bounds(dst, segment_ids)


def tensor_copy_predicated(
    dst: NkiTensor, src: Any, predicate: NkiTensor, reverse_pred: bool = False, name: Any = None
) -> None:
    emit_predicated.tensor_copy_predicated(dst, src, predicate, reverse_pred=reverse_pred)


def nonzero_with_count(
    dst: NkiTensor, src: NkiTensor, index_offset: int = 0, padding_val: Any = -1, name: Any = None
) -> None:
    emit_predicated.nonzero_with_count(dst, src, index_offset=index_offset, padding_val=padding_val)


def nc_stream_shuffle(dst: NkiTensor, src: NkiTensor, shuffle_mask: Any, name: Any = None) -> None:
    emit_predicated.nc_stream_shuffle(dst, src, shuffle_mask)
