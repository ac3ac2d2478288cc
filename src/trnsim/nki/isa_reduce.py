"""`nki.isa` wrappers: reductions, including the fused and top-8 ones (re-exported by nki/isa.py)."""

from __future__ import annotations

from typing import Any

from trnsim.nki import (
    emit_reduce,
    emit_reduce_fused,
)
from trnsim.nki.isa_enums import (
    reduce_cmd,
)
from trnsim.nki.tensor import NkiTensor


def tensor_reduce(
    dst: NkiTensor, op: Any, data: NkiTensor, axis: Any, negate: bool = False, keepdims: bool = False, name: Any = None
) -> None:
    emit_reduce.tensor_reduce(dst, op, data, axis, negate=negate, keepdims=keepdims)


def bn_stats(dst: NkiTensor, data: NkiTensor, name: Any = None) -> None:
    emit_reduce.bn_stats(dst, data)


def bn_aggr(dst: NkiTensor, data: NkiTensor, name: Any = None) -> None:
    emit_reduce.bn_aggr(dst, data)


def tensor_scalar_reduce(
    dst: NkiTensor,
    data: NkiTensor,
    op0: Any,
    operand0: Any,
    reduce_op: Any,
    reduce_res: NkiTensor | None = None,
    reverse0: bool = False,
    reduce_cmd: Any = reduce_cmd.reset_reduce,
    reduce_init: Any = None,
    reduce_res_negate: bool = False,
    name: Any = None,
) -> None:
    emit_reduce_fused.tensor_scalar_reduce(
        dst,
        data,
        op0,
        operand0,
        reduce_op,
        reduce_res=reduce_res,
        reverse0=reverse0,
        reduce_cmd=reduce_cmd.name if hasattr(reduce_cmd, "name") else str(reduce_cmd),
        reduce_init=reduce_init,
        reduce_res_negate=reduce_res_negate,
    )


def max8(dst: NkiTensor, src: NkiTensor, name: Any = None) -> None:
    emit_reduce_fused.max8(dst, src)


def nc_find_index8(dst: NkiTensor, data: NkiTensor, vals: NkiTensor, name: Any = None) -> None:
    emit_reduce_fused.nc_find_index8(dst, data, vals)


def nc_match_replace8(
    dst: NkiTensor, data: NkiTensor, vals: NkiTensor, imm: float, dst_idx: NkiTensor | None = None, name: Any = None
) -> None:
    emit_reduce_fused.nc_match_replace8(dst, data, vals, imm, dst_idx=dst_idx)
