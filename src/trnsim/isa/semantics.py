"""What each instruction computes: the living definition of the ISA, in numpy.

Every function takes float32 operands (the engines' internal precision, trainium.md §3.3) already
read from memory, and returns float32 results; the caller casts on write. TensorE takes its inputs
in their stored dtype, converted exactly to fp32, and accumulates in fp32 like the PSUM.
"""

from __future__ import annotations

import contextlib
from functools import cache
from typing import Any

import numpy as np

from trnsim.isa.alu import ACTIVATIONS, BINARY_OPS, INT_OPS, REDUCE_OPS, UNARY_ALU_OPS

Array = np.ndarray
F32 = np.float32


def as_2d(x: Array) -> Array:
    """View a tile as [partition, flattened free]: how engines iterate over it."""
    return x.reshape(x.shape[0], -1)


def dma_copy(src: Array) -> Array:
    # DMA casts through fp32 when dtypes differ; the caller casts to the destination dtype.
    return src


@cache
def _blas() -> Any:
    """threadpoolctl's controller of the BLAS libraries loaded with numpy (None without threadpoolctl)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: without it BLAS keeps its default thread count
        return None
    return ThreadpoolController()


def one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """BLAS on one thread for a tile's matmul. Tiles are at most 128 x 512 x 512: a second BLAS thread only adds
    hand-over cost (a 128 x 512 x 256 float64 GEMM took 24 ms of CPU with OpenBLAS's two threads on a busy 2-core
    host, 1.6 ms with one), and one thread gives the same bits on every host, whatever its core count (OpenBLAS's
    float32 GEMM rounds differently with two threads), as compiled models' kernels already run."""
    ctl = _blas()
    return ctl.limit(limits=1, user_api="blas") if ctl is not None else contextlib.nullcontext()


def nc_matmul(stationary: Array, moving: Array, double_row: bool = False) -> Array:
    """dst[M, N] = stationary[K, M].T @ moving[K, N]; double-row: inputs [K, 2, M] and [K, 2, N]."""
    if double_row:
        k = stationary.shape[0] * 2
        stationary = stationary.reshape(k, -1)
        moving = moving.reshape(k, -1)
    with one_blas_thread():
        return np.matmul(as_2d(stationary).T.astype(F32, copy=False), as_2d(moving).astype(F32, copy=False), dtype=F32)


def nc_transpose(data: Array) -> Array:
    return np.ascontiguousarray(as_2d(data).T)


def activation(func: str, data: Array, scale: Array | float = 1.0, bias: Array | None = None) -> Array:
    """out = func(data * scale + bias); scale and bias are scalars or [P, 1] vectors."""
    x = as_2d(data) * (scale if np.isscalar(scale) else as_2d(np.asarray(scale)))
    if bias is not None:
        x = x + (F32(float(bias)) if np.isscalar(bias) else as_2d(np.asarray(bias)))  # type: ignore[arg-type]
    return ACTIVATIONS[func](x.astype(F32, copy=False)).astype(F32, copy=False).reshape(data.shape)


def reduce_free(op: str, data: Array) -> Array:
    """Reduce each partition's free elements to one value: [P, ...] -> [P, 1]."""
    return REDUCE_OPS[op](as_2d(data), axis=1, keepdims=True).astype(F32, copy=False)


def _engine_result(out: Array) -> Array:
    """fp32 for arithmetic; bitwise ops keep their integer bits."""
    return out if out.dtype.kind in "iu" else out.astype(F32, copy=False)


def tensor_tensor(op: str, a: Array, b: Array) -> Array:
    return _engine_result(BINARY_OPS[op](a, b))


def tensor_scalar(
    data: Array,
    op0: str,
    operand0: Array | float,
    reverse0: bool = False,
    op1: str | None = None,
    operand1: Array | float | None = None,
    reverse1: bool = False,
) -> Array:
    """(data op0 operand0) op1 operand1; operands are scalars or [P, 1] vectors broadcast along free.
    A unary ALU op (abs, square, relu, rsqrt, reciprocal) applies to its input alone; its operand is unused."""

    def apply(x: Array, op: str, operand: Array | float, reverse: bool) -> Array:
        if op in UNARY_ALU_OPS:
            return UNARY_ALU_OPS[op](x.astype(F32, copy=False))
        if isinstance(operand, np.ndarray):
            v: Any = operand.reshape(x.shape[0], *([1] * (x.ndim - 1)))
        else:
            v = np.int64(operand) if op in INT_OPS else F32(operand)
        return BINARY_OPS[op](v, x) if reverse else BINARY_OPS[op](x, v)

    out = apply(data, op0, operand0, reverse0)
    if op1 is not None:
        assert operand1 is not None
        out = apply(out, op1, operand1, reverse1)
    return _engine_result(out)


def _per_partition(x: Array | float, p: int) -> Array:
    """A scalar operand, or a [P, 1] vector, as a [P, 1] fp32 column (broadcast along the free axis)."""
    return np.broadcast_to(np.asarray(x, dtype=F32).reshape(-1, 1), (p, 1))


def tensor_tensor_scan(
    data0: Array,
    data1: Array,
    initial: Array | float,
    op0: str,
    op1: str,
    reverse0: bool = False,
    reverse1: bool = False,
) -> Array:
    """Scan along each partition's flattened free axis, in fp32:
    r[i] = op1(op0(data0[i], r[i-1]), data1[i]), with r[-1] = initial (a scalar or [P, 1] vector).

    reverse0 makes data0 the right operand of op0; reverse1 makes data1 the left operand of op1.
    """
    a, b = as_2d(data0).astype(F32), as_2d(data1).astype(F32)
    f0, f1 = BINARY_OPS[op0], BINARY_OPS[op1]
    prev = _per_partition(initial, a.shape[0])
    out = np.empty_like(a)
    for i in range(a.shape[1]):
        x, y = a[:, i : i + 1], b[:, i : i + 1]
        t = (f0(prev, x) if reverse0 else f0(x, prev)).astype(F32)
        prev = (f1(y, t) if reverse1 else f1(t, y)).astype(F32)
        out[:, i : i + 1] = prev
    return out.reshape(data0.shape)


def scalar_tensor_tensor(
    data: Array,
    op0: str,
    operand0: Array | float,
    op1: str,
    operand1: Array,
    reverse0: bool = False,
    reverse1: bool = False,
) -> Array:
    """(data op0 operand0) op1 operand1, in fp32: operand0 a scalar or [P, 1] vector, operand1 a whole tile.

    reverse0 computes operand0 op0 data; reverse1 computes operand1 op1 (the first result).
    """
    x = as_2d(data).astype(F32)
    s = _per_partition(operand0, x.shape[0])
    t = (BINARY_OPS[op0](s, x) if reverse0 else BINARY_OPS[op0](x, s)).astype(F32)
    y = as_2d(operand1).astype(F32)
    out = BINARY_OPS[op1](y, t) if reverse1 else BINARY_OPS[op1](t, y)
    return out.astype(F32).reshape(data.shape)


def reciprocal(data: Array) -> Array:
    """1 / x, computed exactly in fp32 (VectorE's reciprocal, not ScalarE's approximation)."""
    return (F32(1.0) / data.astype(F32)).astype(F32)


def tensor_reduce(op: str, data: Array, axes: tuple[int, ...], negate: bool = False, keepdims: bool = False) -> Array:
    out = _engine_result(np.asarray(REDUCE_OPS[op](data, axis=axes, keepdims=keepdims)))
    return -out if negate else out


def tensor_copy(src: Array) -> Array:
    return src


def memset(shape: tuple[int, ...], value: float) -> Array:
    return np.full(shape, value, dtype=F32)


def iota(shape: tuple[int, ...], pattern: list[tuple[int, int]], offset: int, channel_multiplier: int) -> Array:
    """value[p, i0, i1, ...] = offset + p * channel_multiplier + sum_k i_k * step_k, in int32.

    `pattern` is NKI's access-pattern list [[step, count], ...] over the free dims. GpSimd does this in
    integer arithmetic, so unlike the other instructions the result is int32 (the caller casts on write).
    """
    p = np.arange(shape[0], dtype=np.int64).reshape(-1, *([1] * len(pattern)))
    out = offset + p * channel_multiplier
    for k, (step, count) in enumerate(pattern):
        idx_shape = [1] * (len(pattern) + 1)
        idx_shape[k + 1] = count
        out = out + np.arange(count, dtype=np.int64).reshape(idx_shape) * step
    return out.reshape(shape).astype(np.int32)


def affine_select(predicate: Array, on_true: Array, on_false_value: float) -> Array:
    """Keep on_true where the (affine) predicate holds, else on_false_value."""
    return np.where(predicate, on_true, F32(on_false_value)).astype(F32, copy=False)


def select(predicate: Array, on_true: Array, on_false: Array | float) -> Array:
    return np.where(predicate != 0, on_true, on_false).astype(F32, copy=False)


def bn_stats(data: Array) -> Array:
    """Per partition: (count, mean, var*count) of the even elements, then of the odd ones -> [P, 6]."""
    x = as_2d(data).astype(np.float64)
    out = np.empty((x.shape[0], 6), dtype=np.float64)
    for half, part in enumerate((x[:, 0::2], x[:, 1::2])):
        n = part.shape[1]
        mean = part.mean(axis=1) if n else np.zeros(x.shape[0])
        m2 = ((part - mean[:, None]) ** 2).sum(axis=1) if n else np.zeros(x.shape[0])
        out[:, 3 * half] = n
        out[:, 3 * half + 1] = mean
        out[:, 3 * half + 2] = m2
    return out.astype(F32, copy=False)


def bn_aggr(data: Array) -> Array:
    """Combine (count, mean, var*count) triples per partition into (mean, variance) -> [P, 2]."""
    s = as_2d(data).astype(np.float64).reshape(data.shape[0], -1, 3)
    count, mean, m2 = s[..., 0], s[..., 1], s[..., 2]
    total = count.sum(axis=1)
    safe = np.where(total > 0, total, 1.0)
    gmean = (count * mean).sum(axis=1) / safe
    gm2 = (m2 + count * (mean - gmean[:, None]) ** 2).sum(axis=1)
    return np.stack([gmean, gm2 / safe], axis=1).astype(F32, copy=False)
