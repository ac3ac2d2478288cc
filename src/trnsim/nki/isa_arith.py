"""`nki.isa` wrappers: elementwise arithmetic and activation (re-exported by nki/isa.py)."""

from __future__ import annotations

from typing import Any

from trnsim.nki import (
    emit_act2,
    emit_arith,
    emit_cumulative,
    emit_exp,
)
from trnsim.nki.isa_enums import (
    engine,
    reduce_cmd,
    to_engine,
)
from trnsim.nki.tensor import NkiTensor


def activation(
    dst: NkiTensor,
    op: Any,
    data: NkiTensor,
    bias: Any = None,
    scale: Any = 1.0,
    reduce_op: Any = None,
    reduce_res: Any = None,
    reduce_cmd: Any = reduce_cmd.idle,
    name: Any = None,
) -> None:
    emit_arith.activation(
        dst,
        op,
        data,
        bias=bias,
        scale=scale,
        reduce_op=reduce_op,
        reduce_res=reduce_res,
        accumulate_reduce=reduce_cmd in (reduce_cmd.reduce, reduce_cmd.load_reduce),
    )


def tensor_tensor(
    dst: NkiTensor, data1: NkiTensor, data2: NkiTensor, op: Any, engine: Any = engine.unknown, name: Any = None
) -> None:
    emit_arith.tensor_tensor(dst, data1, data2, op, engine=to_engine(engine))


def tensor_scalar(
    dst: NkiTensor,
    data: NkiTensor,
    op0: Any,
    operand0: Any,
    reverse0: bool = False,
    op1: Any = None,
    operand1: Any = None,
    reverse1: bool = False,
    engine: Any = engine.unknown,
    name: Any = None,
) -> None:
    emit_arith.tensor_scalar(dst, data, op0, operand0, reverse0, op1, operand1, reverse1, engine=to_engine(engine))


def reciprocal(dst: NkiTensor, data: NkiTensor, name: Any = None) -> None:
    emit_arith.reciprocal(dst, data)


def tensor_tensor_scan(
    dst: NkiTensor,
    data0: NkiTensor,
    data1: NkiTensor,
    initial: Any,
    op0: Any,
    op1: Any,
    reverse0: bool = False,
    reverse1: bool = False,
    name: Any = None,
) -> None:
    emit_arith.tensor_tensor_scan(dst, data0, data1, initial, op0, op1, reverse0, reverse1)


def scalar_tensor_tensor(
    dst: NkiTensor,
    data: NkiTensor,
    op0: Any,
    operand0: Any,
    op1: Any,
    operand1: NkiTensor,
    reverse0: bool = False,
    reverse1: bool = False,
    name: Any = None,
) -> None:
    emit_arith.scalar_tensor_tensor(dst, data, op0, operand0, op1, operand1, reverse0, reverse1)


def exponential(
    dst: NkiTensor,
    src: NkiTensor,
    max_value: Any = 0.0,
    reduce_res: NkiTensor | None = None,
    reduce_cmd: Any = reduce_cmd.idle,
    reduce_init: Any = 0.0,
    name: Any = None,
) -> None:
    emit_exp.exponential(
        dst,
        src,
        max_value=max_value,
        reduce_res=reduce_res,
        reduce_cmd=reduce_cmd.name if hasattr(reduce_cmd, "name") else str(reduce_cmd),
        reduce_init=reduce_init,
    )


def activate2(
    dst: NkiTensor,
    op: Any,
    data: NkiTensor,
    imm0: Any,
    imm1: Any,
    op0: Any,
    op1: Any,
    relu_param: Any = 0.0,
    reverse0: bool = False,
    reverse1: bool = False,
    reduce_op: Any = None,
    reduce_res: NkiTensor | None = None,
    reduce_cmd: Any = reduce_cmd.idle,
    name: Any = None,
) -> None:
    emit_act2.activate2(
        dst,
        op,
        data,
        imm0,
        imm1,
        op0,
        op1,
        relu_param=relu_param,
        reverse0=reverse0,
        reverse1=reverse1,
        reduce_op=reduce_op,
        reduce_res=reduce_res,
        reduce_cmd=reduce_cmd.name if hasattr(reduce_cmd, "name") else str(reduce_cmd),
    )


def tensor_scalar_cumulative(
    dst: NkiTensor,
    src: NkiTensor,
    op0: Any,
    op1: Any,
    imm0: Any,
    imm1: Any = None,
    reduce_cmd: Any = reduce_cmd.reset_reduce,
    name: Any = None,
) -> None:
    emit_cumulative.tensor_scalar_cumulative(
        dst,
        src,
        op0,
        op1,
        imm0,
        imm1=imm1,
        reduce_cmd=reduce_cmd.name if hasattr(reduce_cmd, "name") else str(reduce_cmd),
    )


def activation_reduce(
    dst: NkiTensor,
    op: Any,
    data: NkiTensor,
    reduce_op: Any,
    reduce_res: NkiTensor,
    bias: Any = None,
    scale: Any = 1.0,
    name: Any = None,
) -> None:
    """activation with its free-axis reduction into reduce_res[P, 1] (the activation record's reduce form)."""
    emit_arith.activation(dst, op, data, bias=bias, scale=scale, reduce_op=reduce_op, reduce_res=reduce_res)
