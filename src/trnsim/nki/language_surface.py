"""nki.language names beyond the core set: NKIObject, the MX dtypes, DType, spmd_dim, loop_reduce,
no_reorder, shared_constant and the dynamic loops (dynamic_range, fori_loop, while_loop).

`nki.language` re-exports everything here.

Dynamic loops (NKI 0.6): their trip count may come from a tile at run time. In functional mode trnsim
reads the tile's value where the loop starts, so the loop runs exactly as on the device. Timing mode has
no values, so a trip count read from a tile is refused with an error that says to pass an int or to run
the kernel in functional mode (nki.simulate) instead.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from trnsim import dtypes as _dt
from trnsim.errors import ShapeMismatchError, UsageError
from trnsim.nki import emit_arith
from trnsim.nki.compiler import no_reorder as no_reorder
from trnsim.nki.context import current, user_location
from trnsim.nki.indexing import NcDim
from trnsim.nki.isa_registers import VirtualRegister
from trnsim.nki.nki_object import NKIObject as NKIObject
from trnsim.nki.tensor import NkiTensor
from trnsim.sim.memory import MemoryKind

DType = np.dtype
float8_e8m0fnu = _dt.float8_e8m0fnu
float8_e4m3fn_x4 = _dt.float8_e4m3fn_x4
float8_e5m2_x4 = _dt.float8_e5m2_x4
float4_e2m1fn_x4 = _dt.float4_e2m1fn_x4


class SpmdDim(NcDim):
    """A launch-grid dim of `size` programs spread over `cores` physical cores (program i on core i % cores)."""

    cores: int

    def __new__(cls, size: int, cores: int) -> SpmdDim:
        dim = super().__new__(cls, size)
        dim.cores = cores
        return dim


def spmd_dim(*sizes: Any) -> SpmdDim:
    """`kernel[nl.spmd_dim(4, nl.nc(2))]`: one grid dim of 4 x 2 programs, sharded over 2 physical cores."""
    loc = user_location()
    if not sizes:
        raise UsageError("nl.spmd_dim(...) takes at least one size, e.g. nl.spmd_dim(4, nl.nc(2))", loc)
    total, cores = 1, 1
    for s in sizes:
        try:
            n = operator.index(s)
        except TypeError:
            n = 0
        if n < 1 or isinstance(s, bool):
            raise UsageError(f"nl.spmd_dim sizes must be positive ints or nl.nc(n), got {s!r}", loc)
        total *= n
        if isinstance(s, NcDim):
            cores *= getattr(s, "cores", n)
    return SpmdDim(total, cores)


class LoopReduce:
    """`dst[...] = nl.loop_reduce(x, op, loop_indices)`: dst = op(x, dst) at each iteration of the loop.

    The destination is the reduction's other input (NKI docs), so the value only means something when
    assigned into the tile that carries the result across iterations.
    """

    def __init__(self, x: NkiTensor, op: Any, loop_indices: Any, dtype: Any) -> None:
        self.x, self.op, self.loop_indices, self.dtype = x, op, loop_indices, dtype

    def reduce_into(self, dst: NkiTensor) -> None:
        if tuple(dst.shape) != tuple(self.x.shape):
            raise ShapeMismatchError(
                f"nl.loop_reduce: the destination {dst!r} and the reduced tile {self.x!r} differ in shape",
                user_location(),
                rule="shape",
            )
        emit_arith.tensor_tensor(dst, self.x, dst, self.op, engine=None)

    def __repr__(self) -> str:
        return f"nl.loop_reduce({self.x!r}, {self.op!r})"


def loop_reduce(x: NkiTensor, op: Any, loop_indices: Any, *, dtype: Any = None, mask: Any = None, **_: Any) -> Any:
    """Reduce `x` into the tile it is assigned to, across iterations of `loop_indices` (legacy NKI)."""
    loc = user_location()
    if not isinstance(x, NkiTensor):
        raise UsageError(f"nl.loop_reduce reduces a tile, got {type(x).__name__}", loc)
    if mask is not None:
        raise UsageError("nl.loop_reduce: mask= is not supported; slice the tiles instead", loc)
    return LoopReduce(x, op, loop_indices, dtype)


def _trip_value(v: Any, what: str) -> int:
    """An int loop bound, a register's value, or the value of a (1, 1) integer tile (functional mode)."""
    if isinstance(v, VirtualRegister):  # registers follow the same timing-mode rule (nki/isa_registers.py)
        return v.read(f"a dynamic loop {what}")
    if isinstance(v, NkiTensor):
        loc = user_location()
        if v.size != 1 or v.dtype.kind not in "iu":
            raise UsageError(f"a dynamic loop {what} tile must be one integer, got {v!r}", loc)
        if v.alloc.storage is None:
            raise UsageError(
                f"a loop {what} read from a tile at run time has no value in timing mode; pass an int, or run "
                "the kernel in functional mode (nki.simulate)",
                loc,
            )
        return int(np.asarray(v.read()).reshape(-1)[0])
    try:
        return operator.index(v)
    except TypeError:
        raise UsageError(f"a loop {what} must be an int or a (1, 1) integer tile, got {v!r}", user_location()) from None


def dynamic_range(start: Any, stop: Any = None, step: Any = 1) -> range:
    """A loop whose bounds may be integer tiles read at run time (see the module docstring)."""
    if stop is None:
        start, stop = 0, start
    return range(_trip_value(start, "start"), _trip_value(stop, "stop"), _trip_value(step, "step"))


def fori_loop(lower: Any, upper: Any, body_fun: Callable[[int], Any], step: Any = 1) -> None:
    """Call `body_fun(i)` for i in dynamic_range(lower, upper, step)."""
    if not callable(body_fun):
        raise UsageError(f"nl.fori_loop: body_fun must be callable, got {body_fun!r}", user_location())
    for i in dynamic_range(lower, upper, step):
        body_fun(i)


def while_loop(init: Any, body_fun: Callable[[Any], Any]) -> Any:
    """Run `state = body_fun(state)` from `init` while the loop condition holds.

    `init` is a (1, 1) integer tile, a register or an int: the loop runs while it is non-zero, and
    `body_fun` returns the condition for the next test. Its value is read each time (functional mode).
    """
    if not callable(body_fun):
        raise UsageError(f"nl.while_loop: body_fun must be callable, got {body_fun!r}", user_location())
    cond = init
    for _ in _bounded():
        if _trip_value(cond, "condition") == 0:
            return cond
        cond = body_fun(cond)
    raise UsageError("nl.while_loop ran 2**20 iterations without its condition becoming 0", user_location())


def _bounded() -> Iterator[int]:
    yield from range(1 << 20)  # a runaway data-dependent loop becomes an error, not a hang


def shared_constant(constant: Any, dtype: Any = None) -> NkiTensor:
    """An HBM tensor holding `constant` (an array, or the path of a .npy file), cast to `dtype` if given.

    The data is part of the compiled kernel and in HBM before it starts (NKI docs), so making it costs no
    instruction.
    """
    ctx = current()
    loc = user_location()
    try:
        data = np.load(constant) if isinstance(constant, str) else np.asarray(constant)
    except (OSError, ValueError) as err:
        raise UsageError(f"nl.shared_constant could not read {constant!r}: {err}", loc) from None
    if data.dtype == object or data.ndim == 0:
        raise UsageError(f"nl.shared_constant takes a numeric array of at least one dim, got {constant!r}", loc)
    dt = data.dtype if dtype is None else _dt.resolve(dtype)
    alloc = ctx.machine.allocate(MemoryKind.HBM, tuple(data.shape), dt, "shared_constant", ctx.core, loc)
    if alloc.storage is not None:
        alloc.storage[...] = data.astype(dt)
    alloc.mark_all_written()
    return NkiTensor(alloc)
