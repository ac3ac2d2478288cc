"""`nki.language` (and legacy `neuronxcc.nki.language`): tiles, memory, math, loops and indexing."""

from __future__ import annotations

import builtins as _builtins
import os
from typing import Any

import ml_dtypes as _ml
import numpy as np

from trnsim import dtypes as _dt
from trnsim.errors import DtypeError, UsageError
from trnsim.nki import compiler as _ncc
from trnsim.nki import emit_movement as _movement
from trnsim.nki import language_impl as _impl
from trnsim.nki import tiles as _tiles
from trnsim.nki.context import current as _current
from trnsim.nki.context import user_location as _loc
from trnsim.nki.indexing import ParDim as _ParDim
from trnsim.nki.indexing import arange as arange
from trnsim.nki.indexing import ds as ds
from trnsim.nki.indexing import mgrid as mgrid
from trnsim.nki.indexing import nc as nc
from trnsim.nki.indexing import par_dim as par_dim
from trnsim.nki.language_buffers import MemoryRegion as MemoryRegion
from trnsim.nki.language_buffers import hbm as hbm
from trnsim.nki.language_buffers import is_hbm as is_hbm
from trnsim.nki.language_buffers import is_on_chip as is_on_chip
from trnsim.nki.language_buffers import is_psum as is_psum
from trnsim.nki.language_buffers import is_sbuf as is_sbuf
from trnsim.nki.language_buffers import private_hbm as private_hbm
from trnsim.nki.language_buffers import psum as psum
from trnsim.nki.language_buffers import sbuf as sbuf
from trnsim.nki.language_buffers import shared_hbm as shared_hbm
from trnsim.nki.language_ops06 import abs_min as abs_min
from trnsim.nki.language_ops06 import average as average
from trnsim.nki.language_ops06 import bypass as bypass
from trnsim.nki.language_ops06 import gather_flattened as gather_flattened
from trnsim.nki.language_ops06 import gelu_apprx_sigmoid_dx as gelu_apprx_sigmoid_dx
from trnsim.nki.language_ops06 import prelu as prelu
from trnsim.nki.language_random import dropout as dropout
from trnsim.nki.language_random import rand as rand
from trnsim.nki.language_random import random_seed as random_seed
from trnsim.nki.language_surface import DType as DType
from trnsim.nki.language_surface import NKIObject as NKIObject
from trnsim.nki.language_surface import SpmdDim as SpmdDim
from trnsim.nki.language_surface import dynamic_range as dynamic_range
from trnsim.nki.language_surface import float4_e2m1fn_x4 as float4_e2m1fn_x4
from trnsim.nki.language_surface import float8_e4m3fn_x4 as float8_e4m3fn_x4
from trnsim.nki.language_surface import float8_e5m2_x4 as float8_e5m2_x4
from trnsim.nki.language_surface import float8_e8m0fnu as float8_e8m0fnu
from trnsim.nki.language_surface import fori_loop as fori_loop
from trnsim.nki.language_surface import loop_reduce as loop_reduce
from trnsim.nki.language_surface import no_reorder as no_reorder
from trnsim.nki.language_surface import shared_constant as shared_constant
from trnsim.nki.language_surface import spmd_dim as spmd_dim
from trnsim.nki.language_surface import while_loop as while_loop
from trnsim.nki.language_tile_size import tile_size as tile_size
from trnsim.nki.ops import BINARY as _BINARY
from trnsim.nki.ops import UNARY as _UNARY
from trnsim.nki.tensor import NkiTensor
from trnsim.sim.memory import MemoryKind

# -- dtypes ------------------------------------------------------------------------------------------
bfloat16 = _dt.bfloat16
float8_e4m3 = _dt.float8_e4m3
float8_e4m3fn = _dt.float8_e4m3fn
float8_e5m2 = _dt.float8_e5m2
float16 = _dt.float16
float32 = _dt.float32
tfloat32 = _dt.tfloat32
int8, uint8, int16, uint16, int32, uint32 = _dt.int8, _dt.uint8, _dt.int16, _dt.uint16, _dt.int32, _dt.uint32
bool_ = _dt.bool_


class fp32:
    """Legacy nl.fp32: the float32 limits (fp32.min is the bit pattern 0xff7fffff, -3.4028235e38)."""

    dtype = _dt.float32
    min = float(np.finfo(np.float32).min)
    max = float(np.finfo(np.float32).max)


def finfo(dtype: Any) -> Any:
    """Machine limits of a float dtype (bf16 and fp8 included), like numpy.finfo."""
    try:
        dt = _dt.resolve(dtype)
    except DtypeError as err:
        raise DtypeError(err.bare_message, _loc(), rule="dtype") from None
    if not _dt.is_float(dt):
        raise DtypeError(f"nl.finfo takes a float dtype, got {_dt.name(dt)}; use np.iinfo for integers", _loc())
    return _ml.finfo(dt)


# -- ops ---------------------------------------------------------------------------------------------
# Every ALU op and activation function is both a function (`nl.exp(x)`) and an `op=` value.
# Spelled out one per line so type checkers and editors see them.
identity = _UNARY["identity"]
exp = _UNARY["exp"]
log = _UNARY["log"]
sqrt = _UNARY["sqrt"]
rsqrt = _UNARY["rsqrt"]
reciprocal = _UNARY["reciprocal"]
sin = _UNARY["sin"]
cos = _UNARY["cos"]
tan = _UNARY["tan"]
tanh = _UNARY["tanh"]
arctan = _UNARY["arctan"]
sigmoid = _UNARY["sigmoid"]
relu = _UNARY["relu"]
gelu = _UNARY["gelu"]
gelu_dx = _UNARY["gelu_dx"]
gelu_apprx_tanh = _UNARY["gelu_apprx_tanh"]
gelu_apprx_sigmoid = _UNARY["gelu_apprx_sigmoid"]
silu = _UNARY["silu"]
silu_dx = _UNARY["silu_dx"]
softplus = _UNARY["softplus"]
mish = _UNARY["mish"]
erf = _UNARY["erf"]
erf_dx = _UNARY["erf_dx"]
square = _UNARY["square"]
abs = _UNARY["abs"]
sign = _UNARY["sign"]
ceil = _UNARY["ceil"]
floor = _UNARY["floor"]
trunc = _UNARY["trunc"]
negative = _UNARY["negative"]
add = _BINARY["add"]
subtract = _BINARY["subtract"]
multiply = _BINARY["multiply"]
divide = _BINARY["divide"]
maximum = _BINARY["maximum"]
minimum = _BINARY["minimum"]
power = _BINARY["power"]
fmod = _BINARY["fmod"]
mod = _BINARY["mod"]
equal = _BINARY["equal"]
not_equal = _BINARY["not_equal"]
greater = _BINARY["greater"]
greater_equal = _BINARY["greater_equal"]
less = _BINARY["less"]
less_equal = _BINARY["less_equal"]
logical_and = _BINARY["logical_and"]
logical_or = _BINARY["logical_or"]
logical_xor = _BINARY["logical_xor"]
bitwise_and = _BINARY["bitwise_and"]
bitwise_or = _BINARY["bitwise_or"]
bitwise_xor = _BINARY["bitwise_xor"]
left_shift = _BINARY["left_shift"]
right_shift = _BINARY["right_shift"]
abs_max = _BINARY["abs_max"]


# -- creation ----------------------------------------------------------------------------------------
def ndarray(shape: Any, dtype: Any, buffer: Any = None, name: str = "", address: Any = None, **_: Any) -> NkiTensor:
    """A new tensor. `address` (an explicit placement, as nki.compiler placements give) is checked to be
    non-negative ints; trnsim then allocates as usual, since a placement decides addresses, not values."""
    if address is not None:
        parts = address if isinstance(address, tuple | list) else (address,)
        if not _builtins.all(isinstance(a, int | np.integer) and not isinstance(a, bool) and a >= 0 for a in parts):
            raise UsageError(f"nl.ndarray address must be non-negative ints, got {address!r}", _loc())
    placement = buffer if isinstance(buffer, _ncc.AllocatedBuffer) else None
    buffer = _ncc.memory_kind(buffer)  # nki.compiler placements name the memory they place in
    if buffer is shared_hbm:
        return _tiles.new_shared_hbm(_shape(shape), dtype, name)
    if buffer is not None and not isinstance(buffer, MemoryKind):
        raise UsageError(f"unknown buffer {buffer!r}; use nl.sbuf, nl.psum, nl.hbm or nl.shared_hbm", _loc())
    dims = shape if isinstance(shape, tuple | list) else (shape,)
    if address is None:
        t = _tiles.new_tensor(dims, dtype, buffer or sbuf, name)
    else:  # the kernel placed it: an earlier tile at this address is over (tiles.new_placed_tensor)
        t = _tiles.new_placed_tensor(dims, dtype, buffer or sbuf, name, tuple(int(a) for a in parts))
    if placement is not None:
        par_axis = next((i for i, s in enumerate(dims) if isinstance(s, _ParDim)), 0)
        placement.check(tuple(t.alloc.shape), t.dtype.itemsize, par_axis, _current().machine.spec.core)
    return t


def _shape(shape: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in shape) if isinstance(shape, tuple | list) else (int(shape),)


def full(shape: Any, fill_value: float, dtype: Any, buffer: Any = None, name: str = "", **kw: Any) -> NkiTensor:
    t = ndarray(shape, dtype, buffer=buffer, name=name)
    if t.buffer is MemoryKind.HBM:
        raise UsageError(
            "nl.full/zeros/ones create on-chip tiles; allocate HBM with nl.ndarray and store into it", _loc()
        )
    _movement.memset(t, fill_value, mask=kw.get("mask"))
    return t


def zeros(shape: Any, dtype: Any, buffer: Any = None, name: str = "", **kw: Any) -> NkiTensor:
    return full(shape, 0.0, dtype, buffer, name, **kw)


def ones(shape: Any, dtype: Any, buffer: Any = None, name: str = "", **kw: Any) -> NkiTensor:
    return full(shape, 1.0, dtype, buffer, name, **kw)


def zeros_like(x: NkiTensor, dtype: Any = None, buffer: Any = None, name: str = "", **kw: Any) -> NkiTensor:
    return zeros(x.shape, dtype or x.dtype, buffer or sbuf, name, **kw)


def ones_like(a: NkiTensor, dtype: Any = None, buffer: Any = None, name: str = "", **kw: Any) -> NkiTensor:
    return ones(a.shape, dtype or a.dtype, buffer or sbuf, name, **kw)


def empty_like(x: NkiTensor, dtype: Any = None, buffer: Any = None, name: str = "", **_: Any) -> NkiTensor:
    return ndarray(x.shape, dtype or x.dtype, buffer=buffer or sbuf, name=name)


# -- memory ------------------------------------------------------------------------------------------
def load(src: NkiTensor, *, mask: Any = None, dtype: Any = None, **_: Any) -> NkiTensor:
    return _impl.load(src, mask=mask, dtype=dtype)


def store(dst: NkiTensor, value: Any, *, mask: Any = None, **_: Any) -> None:
    """`value` (a tile) into `dst`; a scalar value fills `dst` (the NKI docs: "effectively a memset")."""
    if isinstance(value, int | float | np.number) and isinstance(dst, NkiTensor):
        value = full(dst.shape, value, dtype=dst.dtype)  # type: ignore[arg-type]  # ints stay exact
    _impl.store(dst, value, mask=mask)


def copy(x: NkiTensor, dtype: Any = None, *, mask: Any = None, **_: Any) -> NkiTensor:
    return _impl.copy(x, dtype=dtype, mask=mask)


def load_transpose2d(src: NkiTensor, *, mask: Any = None, dtype: Any = None, **_: Any) -> NkiTensor:
    """HBM [F, P] -> a new SBUF tile [P, F]: one DMA whose access pattern transposes."""
    return _impl.load_transpose2d(src, mask=mask, dtype=dtype)


def shared_identity_matrix(n: int, dtype: Any = _dt.uint8, dst: NkiTensor | None = None, **_: Any) -> NkiTensor:
    """An [n, n] identity tile in SBUF (memset then affine_select on GpSimd), or written into `dst`."""
    return _impl.identity_matrix(n, dtype, dst)


def expand_dims(x: NkiTensor, axis: int) -> NkiTensor:
    """A view of `x` with a new size-1 dim at `axis` (no data moves)."""
    if not isinstance(x, NkiTensor):
        raise UsageError(f"nl.expand_dims takes a tensor, got {type(x).__name__}", _loc())
    return x.expand_dims(axis)


def broadcast_to(x: NkiTensor, shape: Any, dtype: Any = None, **_: Any) -> NkiTensor:
    out = _impl.broadcast_to(x, _shape(shape))
    return out if dtype is None or _dt.resolve(dtype) == out.dtype else copy(out, dtype=dtype)


def transpose(x: NkiTensor, *, dtype: Any = None, mask: Any = None, **_: Any) -> NkiTensor:
    return _impl.transpose(x, dtype=dtype, mask=mask)


def matmul(x: NkiTensor, y: NkiTensor, *, transpose_x: bool = False, mask: Any = None, **_: Any) -> NkiTensor:
    # TensorE reads SBUF only; for PSUM operands (e.g. an nl.transpose result) the compiler copies them out
    # first, as the Neuron compiler does for nki.language calls.
    x, y = (copy(t) if isinstance(t, NkiTensor) and t.buffer is psum else t for t in (x, y))
    return _impl.matmul(x, y, transpose_x=transpose_x, mask=mask)


# -- reductions and fused ops ------------------------------------------------------------------------
def sum(x: NkiTensor, axis: Any, *, dtype: Any = None, mask: Any = None, keepdims: bool = False, **_: Any) -> NkiTensor:
    return _impl.reduce("add", x, axis, dtype=dtype, mask=mask, keepdims=keepdims)


def max(x: NkiTensor, axis: Any, *, dtype: Any = None, mask: Any = None, keepdims: bool = False, **_: Any) -> NkiTensor:
    return _impl.reduce("maximum", x, axis, dtype=dtype, mask=mask, keepdims=keepdims)


def min(x: NkiTensor, axis: Any, *, dtype: Any = None, mask: Any = None, keepdims: bool = False, **_: Any) -> NkiTensor:
    return _impl.reduce("minimum", x, axis, dtype=dtype, mask=mask, keepdims=keepdims)


def prod(
    x: NkiTensor, axis: Any, *, dtype: Any = None, mask: Any = None, keepdims: bool = False, **_: Any
) -> NkiTensor:
    return _impl.reduce("multiply", x, axis, dtype=dtype, mask=mask, keepdims=keepdims)


def mean(
    x: NkiTensor, axis: Any, *, dtype: Any = None, mask: Any = None, keepdims: bool = False, **_: Any
) -> NkiTensor:
    return _impl.mean(x, axis, dtype=dtype, mask=mask, keepdims=keepdims)


def var(x: NkiTensor, axis: Any, *, dtype: Any = None, mask: Any = None, **_: Any) -> NkiTensor:
    return _impl.var(x, axis, dtype=dtype, mask=mask)


def all(
    x: NkiTensor, axis: Any, *, dtype: Any = bool_, mask: Any = None, keepdims: bool = False, **_: Any
) -> NkiTensor:
    """1 where every element along the free axes `axis` is nonzero, else 0."""
    return _impl.reduce("logical_and", x, axis, dtype=dtype, mask=mask, keepdims=keepdims)


def invert(x: NkiTensor, *, dtype: Any = None, mask: Any = None, **_: Any) -> NkiTensor:
    """Bitwise NOT of an integer tile (XOR with all ones of its width)."""
    return _impl.invert(x, dtype=dtype, mask=mask)


def logical_not(x: NkiTensor, *, dtype: Any = bool_, mask: Any = None, **_: Any) -> NkiTensor:
    """1 where x == 0, else 0."""
    return _impl.elementwise_binary("equal", x, 0.0, dtype=dtype, mask=mask)


def softmax(x: NkiTensor, axis: Any = -1, *, dtype: Any = None, mask: Any = None, **_: Any) -> NkiTensor:
    return _impl.softmax(x, axis, dtype=dtype, mask=mask)


def rms_norm(
    x: NkiTensor,
    w: NkiTensor,
    axis: Any,
    n: int,
    epsilon: float = 1e-6,
    *,
    dtype: Any = None,
    mask: Any = None,
    **_: Any,
) -> NkiTensor:
    """x / sqrt(sum(x^2)/n + eps) * w."""
    sq = _impl.unary("square", x, dtype=float32, mask=mask)
    ms = _impl.reduce("add", sq, axis, dtype=float32, mask=mask, keepdims=True)
    ms = _impl.elementwise_binary("multiply", ms, 1.0 / n, mask=None)
    ms = _impl.elementwise_binary("add", ms, epsilon, mask=None)
    inv = _impl.unary("rsqrt", ms)
    normed = _impl.elementwise_binary("multiply", x, inv, dtype=float32, mask=mask)
    return _impl.elementwise_binary("multiply", normed, w, dtype=dtype or x.dtype, mask=mask)


def where(condition: NkiTensor, x: Any, y: Any, *, dtype: Any = None, mask: Any = None, **_: Any) -> NkiTensor:
    return _impl.where(condition, x, y, dtype=dtype, mask=mask)


def device_print(print_prefix: str, tensor: Any, **_: Any) -> None:
    _impl.device_print(print_prefix, tensor)


# -- loops and SPMD ----------------------------------------------------------------------------------
def affine_range(start: int, stop: int | None = None, step: int = 1, **_: Any) -> range:
    """Parallel loop; the simulator runs iterations in order (a valid schedule of a parallel loop)."""
    return range(0, start, step) if stop is None else range(start, stop, step)


def sequential_range(start: int, stop: int | None = None, step: int = 1, **_: Any) -> range:
    return range(0, start, step) if stop is None else range(start, stop, step)


def static_range(start: int, stop: int | None = None, step: int = 1, **_: Any) -> range:
    return range(0, start, step) if stop is None else range(start, stop, step)


def program_id(axis: int = 0) -> int:
    ctx = _current()
    if not isinstance(axis, int) or not 0 <= axis < len(ctx.grid):
        raise UsageError(
            f"program_id({axis!r}): axis must be an int in 0..{len(ctx.grid) - 1} (the launch grid "
            f"{list(ctx.grid)} has {len(ctx.grid)} dims)",
            _loc(),
        )
    return ctx.program_id[axis]


def num_programs(axes: Any = None) -> int:
    ctx = _current()
    if axes is None:
        return int(np.prod(ctx.grid))
    listed = list(axes) if isinstance(axes, tuple | list) else [axes]
    if not _builtins.all(isinstance(a, int) and 0 <= a < len(ctx.grid) for a in listed):
        raise UsageError(
            f"num_programs({axes!r}): axes must be ints in 0..{len(ctx.grid) - 1} for the launch grid {list(ctx.grid)}",
            _loc(),
        )
    if isinstance(axes, tuple | list):
        return int(np.prod([ctx.grid[a] for a in axes]))
    return ctx.grid[int(axes)]


def program_ndim() -> int:
    return len(_current().grid)


def static_cast(arr: Any, dtype: Any) -> np.ndarray:
    """Host-side cast used by tests (ml_dtypes rounding)."""
    return np.asarray(arr).astype(_dt.resolve(dtype))


# `for i in nl.range(n)` (nkilib): NKI's loop helpers are aliases of Python's range (NKI docs,
# nki.language.affine_range), so nl.range is Python's range itself.
range = _builtins.range

__all__ = [n for n in list(globals()) if not n.startswith("_") and n not in ("annotations", "os", "Any", "np")]
_ = os
