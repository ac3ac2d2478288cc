"""Elementwise kernels: `unary`, `binary` (numpy broadcasting) and `fused_chain` (many ops, one pass).

All three are one streaming loop. The output is seen as rows [R, D] (leading dims flattened; with no
broadcasting at all, as a flat run of elements cut into ~16 KiB rows, so any shape streams at full DMA
rate). Rows go onto partitions in blocks (see _stream.row_blocks); for each block the kernel loads every
operand (ahead of compute), runs the whole chain on chip and stores once. The chain is mapped onto the
engines the way the hardware likes it:
- activation functions run on ScalarE, which applies a scale and a bias for free, so scalar multiplies
  and adds in front of a function fold into it (multiply 2, add 1, gelu is one instruction);
- other scalar ops pair up into VectorE tensor_scalar instructions (two ops per instruction);
- an operand with one value per row (shape [..., 1]) is a [P, 1] tensor_scalar operand; a full operand
  is a tensor_tensor; a step either engine can do goes to the less busy one (_engine_load.EngineLoad).
Intermediates stay on chip in fp32 (16-bit when neither input nor output is fp32, like PyTorch's eager
evaluation); only the final result is cast to the output dtype.
"""

from __future__ import annotations

import numbers
from types import SimpleNamespace
from typing import Any

import numpy as np

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.errors import DtypeError, UsageError
from trnsim.kernels._chain import _compile, _Step
from trnsim.kernels._common import (
    FLOAT_DTYPES,
    efficient_dma_row_bytes,
    pmax,
    require,
    require_dtype,
    sbuf_bytes_per_partition,
)
from trnsim.kernels._elementwise_layout import _Block, _blocks, _broadcast_shape, _Operand, _operand, _rows_view, _view
from trnsim.kernels._engine_load import EngineLoad
from trnsim.kernels._stream import (
    DMA_RUN_BYTES,
    SBUF_SHARE,
    block_run_bytes,
    blocks_that_fit,
    broadcast_row,
    const_column,
    prefetch,
    prefetch_depth,
)
from trnsim.nki.context import outside_location
from trnsim.nki.tensor import NkiTensor

# ALU ops on raw integer bits: not elementwise float math.
_BIT_OPS = ("bitwise_and", "bitwise_or", "bitwise_xor", "left_shift", "right_shift")


@nki.jit
def unary(x, op, dtype=None):
    """op(x) elementwise. op: an activation of nki.language by name ("exp", "gelu", "silu", "rsqrt", ...).

    dtype: output dtype (default x's). fp8 inputs are read directly (fp8 in, e.g. bf16 out with dtype=).
    """
    name = _op_name(op, "unary", "unary")
    return _stream_chain(x, [(name, None, False)], dtype, "unary")


@nki.jit
def binary(x, y, op, dtype=None):
    """x op y elementwise with numpy broadcasting (either may be a Python number).

    op: an ALU op by name ("add", "subtract", "multiply", "divide", "maximum", "minimum", "power", or a
    comparison, which gives 1.0 / 0.0). dtype: output dtype (default: the wider input float type).
    """
    name = _op_name(op, "binary", "binary")
    tensors = [t for t in (x, y) if isinstance(t, NkiTensor)]
    require(bool(tensors), "binary: at least one of x and y must be a tensor")
    for t, what in zip((x, y), ("x", "y")):
        _check_operand(t, what, "binary")
    out_shape = _broadcast_shape([tuple(t.shape) for t in tensors], "binary")
    out_dtype = max((t.dtype for t in tensors), key=lambda d: d.itemsize)
    # The primary operand (the one streamed through the chain) must span the output's last dim.
    if isinstance(x, NkiTensor) and (tuple(x.shape)[-1:] == out_shape[-1:] or not isinstance(y, NkiTensor)):
        return _stream_chain(x, [(name, y, False)], dtype or out_dtype, "binary", out_shape)
    return _stream_chain(y, [(name, x, True)], dtype or out_dtype, "binary", out_shape)


@nki.jit
def fused_chain(x, ops, dtype=None):
    """Apply ops to x in one pass: one load, every op on chip, one store.

    ops: a list of (op, operand): a unary op with operand None, or a binary op with a number or a tensor
    that broadcasts to x's shape, computed as value = value op operand; e.g.
    [("multiply", 2.0), ("add", bias), ("gelu", None)]. A third item True reverses a binary op:
    ("subtract", 1.0, True) is value = 1.0 - value.
    """
    require(isinstance(ops, list | tuple), f"fused_chain: ops must be a list of (op, operand) pairs, got {ops!r}")
    chain = []
    for i, step in enumerate(ops):
        require(
            isinstance(step, list | tuple) and len(step) in (2, 3) and (len(step) == 2 or isinstance(step[2], bool)),
            f"fused_chain: ops[{i}] must be an (op, operand) pair or (op, operand, reverse: bool), got {step!r}",
        )
        op, operand = step[0], step[1]
        reverse = len(step) == 3 and step[2]
        _check_operand(operand, f"ops[{i}] operand", "fused_chain")
        if operand is None:
            chain.append((_op_name(op, "unary", "fused_chain"), None, False))
        else:
            name = _op_name(op, "binary", "fused_chain")
            if isinstance(operand, NkiTensor):
                shape = _broadcast_shape([tuple(x.shape), tuple(operand.shape)], "fused_chain")
                require(
                    shape == tuple(x.shape),
                    f"fused_chain: ops[{i}] operand {list(operand.shape)} would broadcast x {list(x.shape)} "
                    f"to {list(shape)}; operands must broadcast to x's shape",
                )
            chain.append((name, operand, reverse))
    return _stream_chain(x, chain, dtype, "fused_chain")


# -- argument checks ----------------------------------------------------------------------------------
def _op_name(op: Any, kind: str, kernel: str) -> str:
    """The nki.language name of a unary (activation) or binary (ALU) op, given by name or as nl.<op>."""
    name = getattr(op, "nki_name", op)
    known = sorted(n for n in dir(nl) if getattr(getattr(nl, n), "kind", None) == kind and n not in _BIT_OPS)
    if name not in known:
        raise UsageError(
            f"{kernel}: {op!r} is not a {kind} op; supported: {', '.join(known)}", outside_location(), rule="op"
        )
    return str(name)


def _check_operand(t: Any, what: str, kernel: str) -> None:
    if t is None or isinstance(t, numbers.Real):
        return
    if not isinstance(t, NkiTensor):
        raise UsageError(
            f"{kernel}: {what} must be a tensor or a number, got {type(t).__name__}", outside_location(), rule="arg"
        )
    require_dtype(what, t, FLOAT_DTYPES, kernel)
    require(t.ndim >= 1 and t.size > 0, f"{kernel}: {what} must have at least one dim and one element")


def _resolve_dtype(dtype: Any, kernel: str) -> Any:
    try:
        dt = dtypes.resolve(dtype)
    except DtypeError as err:
        raise DtypeError(f"{kernel}: {err.bare_message}", outside_location(), rule="dtype") from None
    require_dtype("dtype", SimpleNamespace(dtype=dt), FLOAT_DTYPES, kernel)
    return dt


def _work_dtype(x_dtype: Any, out_dtype: Any) -> Any:
    """Dtype of a chain's intermediates: fp32 if the input or the output is fp32, else 16-bit (like PyTorch's
    eager evaluation, and what VectorE's bf16 perf modes need)."""
    if nl.float32 in (x_dtype, out_dtype):
        return nl.float32
    return next((d for d in (x_dtype, out_dtype) if d.itemsize == 2), nl.bfloat16)


# -- the streaming loop ---------------------------------------------------------------------------------
def _stream_chain(x, chain, dtype, kernel, out_shape=None):
    """Run `chain` [(op, operand, reverse)] over primary tensor x; the result has out_shape (x's by default)."""
    _check_operand(x, "x", kernel)
    require(isinstance(x, NkiTensor), f"{kernel}: x must be a tensor")
    out_shape = tuple(x.shape) if out_shape is None else out_shape
    out_dtype = x.dtype if dtype is None else _resolve_dtype(dtype, kernel)
    out = nl.ndarray(out_shape, out_dtype, buffer=nl.shared_hbm)

    tensors = [x] + [o for _, o, _ in chain if isinstance(o, NkiTensor)]
    n = int(np.prod(out_shape))
    widest = max(t.itemsize for t in (*tensors, out))
    # Without broadcasting the rows need not be the output's: stream the flat elements in long rows.
    flat = all(tuple(t.shape) == out_shape for t in tensors)

    primary = _operand(x, out_shape, flat)
    primary.resident = False
    operands: list[_Operand] = []
    indexed_chain = []
    for op, operand, reverse in chain:
        if isinstance(operand, NkiTensor):
            operands.append(_operand(operand, out_shape, flat))
            operand = len(operands) - 1
        indexed_chain.append((op, operand, reverse))
    steps = _compile(indexed_chain, operands)
    work_dtype = _work_dtype(x.dtype, out_dtype)
    work_bytes = 0 if x.dtype == work_dtype or len(steps) < 2 else work_dtype.itemsize
    out_bytes = 0 if out_dtype == x.dtype else out.itemsize
    width, blocks, kept, per_elem = _plan_blocks(
        n, out_shape[-1], widest, flat, operands, x.itemsize + work_bytes + out_bytes
    )

    # Operands that are the same for every row stay in SBUF, broadcast to all partitions once (if they
    # fit in half the streaming budget; else each block broadcasts its columns again).
    k_max = max(b.k for b in blocks)
    resident: dict[int, Any] = {}
    reserved = 0
    for i, op in enumerate(operands):
        if op.resident and i not in kept:
            op.resident, op.per_block = False, True
        if op.resident:
            resident[i] = _load_resident(op, k_max, width)
            reserved += _resident_bytes(op, k_max, width)

    streamed = [i for i, op in enumerate(operands) if not op.resident]
    depth = prefetch_depth(max(b.k * b.d for b in blocks) * per_elem, reserved)
    load = EngineLoad()
    out_flat = out.reshape((n,))
    out2 = out_flat if flat else out.reshape((n // width, width))

    def load_block(b: _Block) -> tuple[Any, dict[int, Any]]:
        xt = nl.ndarray((b.p, b.k, b.d), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=xt, src=_rows_view(primary, b, width))
        tiles = {}
        for i in streamed:
            op = operands[i]
            shape = (b.p, b.k) if op.per_row else (b.p, b.k, b.d)
            tiles[i] = nl.ndarray(shape, op.flat.dtype, buffer=nl.sbuf)
            if op.per_block:  # (k == 1: rows this long fill a partition each)
                broadcast_row(tiles[i].reshape((b.p, b.k * shape[-1])), op.flat[b.c0 : b.c0 + shape[-1]])
            else:
                nisa.dma_copy(dst=tiles[i], src=_rows_view(op, b, width))
        return xt, tiles

    for b, (xt, tiles) in prefetch(blocks, load_block, depth):
        for i, t in resident.items():
            tiles[i] = t[: b.p, : b.k] if operands[i].per_row else t[: b.p, : b.k, b.c0 : b.c0 + b.d]
        res = _run_steps(steps, xt, tiles, out_dtype, work_dtype, load)
        nisa.dma_copy(dst=_view(out_flat, out2, b, width), src=res)
    return out


def _resident_bytes(op: _Operand, k: int, width: int) -> int:
    return k * (1 if op.per_row else width) * op.flat.itemsize


def _plan_blocks(
    n: int, row_width: int, widest: int, flat: bool, operands: list[_Operand], fixed_bytes: int
) -> tuple[int, list[_Block], set[int], int]:
    """(row width, blocks, operands kept resident, SBUF bytes per streamed element). Blocks of DMA_RUN_BYTES
    runs when one block can load ahead of the one computed (three live blocks) beside the resident operands.
    With many or wide operands, shorter runs: as long as three blocks fit, while runs stay at least the
    DMA's efficient length (loads overlapping compute beat the last few % of DMA efficiency); else as long as
    two fit (the fewest a `prefetch` loop needs). `fixed_bytes`: the primary's, the intermediates' and the
    output's bytes per element."""
    run = DMA_RUN_BYTES
    half = sbuf_bytes_per_partition() * SBUF_SHARE / 2
    for _ in range(3):  # shorter blocks keep the same operands resident (or more), so a second try fits
        width, blocks = _blocks(n, row_width, widest, flat, run)
        k_max = max(b.k for b in blocks)
        kept = {i for i, op in enumerate(operands) if op.resident and _resident_bytes(op, k_max, width) <= half}
        reserved = sum(_resident_bytes(operands[i], k_max, width) for i in kept)
        per_elem = fixed_bytes + sum(op.flat.itemsize for i, op in enumerate(operands) if i not in kept)
        fit = blocks_that_fit(max(b.k * b.d for b in blocks) * per_elem, reserved)
        if fit >= 3:
            break
        ahead = block_run_bytes(widest, per_elem, reserved, live_blocks=3)
        shorter = ahead if ahead >= efficient_dma_row_bytes() else block_run_bytes(widest, per_elem, reserved)
        if shorter >= run or (fit >= 2 and shorter < efficient_dma_row_bytes()):
            break
        run = shorter
    return width, blocks, kept, per_elem


def _load_resident(op: _Operand, k: int, d: int) -> Any:
    """An operand shared by all rows, in every partition: [P, k] for per-row scalars, else [P, k, d]."""
    if op.per_row:
        col = nl.ndarray((pmax(), 1), op.flat.dtype, buffer=nl.sbuf)
        broadcast_row(col, op.flat)
        if k == 1:
            return col
        t = nl.ndarray((pmax(), k), op.flat.dtype, buffer=nl.sbuf)
        for j in range(k):
            nisa.tensor_copy(dst=t[:, j : j + 1], src=col)
        return t
    t = nl.ndarray((pmax(), k, d), op.flat.dtype, buffer=nl.sbuf)
    broadcast_row(t[:, 0, :], op.flat)
    for j in range(1, k):  # k rows per partition: repeat the vector along the free axis
        nisa.tensor_copy(dst=t[:, j, :], src=t[:, 0, :])
    return t


def _run_steps(steps: list[_Step], xt: Any, tiles: dict[int, Any], out_dtype, work_dtype, load: EngineLoad):
    """Issue the chain for one block; returns the tile holding the result (in out_dtype)."""
    p, k, d = xt.shape
    n = k * d
    # In place where the dtypes allow: intermediates in x's tile, and the output too if it has x's dtype.
    work = xt if xt.dtype == work_dtype else None
    out = xt if out_dtype == xt.dtype else None
    src = xt
    for i, st in enumerate(steps):
        if i == len(steps) - 1:
            dst = out if out is not None else nl.ndarray((p, k, d), out_dtype, buffer=nl.sbuf)
        else:
            if work is None:
                work = nl.ndarray((p, k, d), work_dtype, buffer=nl.sbuf)
            dst = work
        if st.kind == "act":
            load.add("scalar", load.scalar_cycles(n))
            bias = _bias_operand(st.bias, p)
            nisa.activation(dst=dst, op=getattr(nl, st.op), data=src, scale=st.scale, bias=bias)
        elif st.kind == "affine":
            engine = load.pick(scalar=load.scalar_cycles(n), vector=load.vector_scalar_cycles(n, src, dst))
            if engine == "scalar":
                nisa.activation(dst=dst, op=nl.copy, data=src, scale=st.scale, bias=_bias_operand(st.bias, p))
            else:
                nisa.tensor_scalar(dst=dst, data=src, op0=nl.multiply, operand0=st.scale, op1=nl.add, operand1=st.bias)
        elif st.kind == "alu":
            load.add("vector", load.vector_scalar_cycles(n, src, dst))
            (op0, c0, r0), *rest = st.alu
            op1, c1, r1 = rest[0] if rest else (None, None, False)
            nisa.tensor_scalar(
                dst=dst,
                data=src,
                op0=getattr(nl, op0),
                operand0=c0,
                reverse0=r0,
                op1=None if op1 is None else getattr(nl, op1),
                operand1=c1,
                reverse1=r1,
            )
        elif st.kind == "row":
            col = tiles[st.operand]
            options = {"vector": k * load.vector_scalar_cycles(d, src, dst)}
            if st.op in ("add", "multiply"):  # ScalarE takes a [P, 1] scale or bias for free
                options["scalar"] = k * load.scalar_cycles(d)
            engine = load.pick(**options)
            for j in range(k):  # one [P, 1] operand per row of the partition
                if engine == "scalar":
                    arg = {"scale": col[:, j : j + 1]} if st.op == "multiply" else {"bias": col[:, j : j + 1]}
                    nisa.activation(dst=dst[:, j, :], op=nl.copy, data=src[:, j, :], **arg)
                else:
                    nisa.tensor_scalar(
                        dst=dst[:, j, :],
                        data=src[:, j, :],
                        op0=getattr(nl, st.op),
                        operand0=col[:, j : j + 1],
                        reverse0=st.reverse,
                    )
        else:
            _tensor_step(st, src, dst, tiles[st.operand], load)
        src = dst
    return src


def _tensor_step(st: _Step, src: Any, dst: Any, other: Any, load: EngineLoad) -> None:
    """dst = (src*scale + bias) op other (reversed: other op ...), in the cheapest way for the engines' load."""
    p, k, d = src.shape
    n = k * d
    op = getattr(nl, st.op)
    tt = load.vector_tensor_cycles(n, dst, src, other, op=st.op)
    if (st.scale, st.bias) == (1.0, 0.0):
        gp = load.gpsimd_tensor_cycles(n, dst, src, other)
        ways = {"vector": {"vector": tt}, "gpsimd": {"gpsimd": gp}}
        if st.op == "power":  # power runs on GpSimd only
            del ways["vector"]
        elif not load.gpsimd_helps():
            del ways["gpsimd"]
        engine = list(ways)[load.choose(*ways.values())]
        a, b = (other, src) if st.reverse else (src, other)
        nisa.tensor_tensor(dst=dst, data1=a, data2=b, op=op, engine=getattr(nisa, engine + "_engine"))
        return
    pre_op, c = (nl.multiply, st.scale) if st.bias == 0.0 else (nl.add, st.bias)
    ways = {
        "fused": {"vector": load.fused_cycles(n, dst, src, other, ops=f"{pre_op.__name__},{st.op}")},
        "scalar+vector": {"scalar": load.scalar_cycles(n), "vector": tt},
        "vector": {"vector": load.vector_scalar_cycles(n, src, dst) + tt},
    }
    way = list(ways)[load.choose(*ways.values())]
    if way == "fused":
        nisa.scalar_tensor_tensor(
            dst=dst, data=src, op0=pre_op, operand0=c, op1=op, operand1=other, reverse1=st.reverse
        )
        return
    if way == "scalar+vector":
        nisa.activation(dst=dst, op=nl.copy, data=src, scale=st.scale, bias=_bias_operand(st.bias, p))
    else:
        nisa.tensor_scalar(dst=dst, data=src, op0=pre_op, operand0=c)
    a, b = (other, dst) if st.reverse else (dst, other)
    nisa.tensor_tensor(dst=dst, data1=a, data2=b, op=op)


def _bias_operand(value: float, p: int) -> Any:
    """ScalarE bias: none for 0, else a [P, 1] tile (NC-v2 takes no scalar bias; one memset per block)."""
    return None if value == 0.0 else const_column(value, p)
