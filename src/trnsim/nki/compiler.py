"""`nki.compiler` (also `neuronxcc.nki.compiler`): allocation control and compiler directives.

Kernels written for direct allocation place tiles themselves: `buffer=ncc.sbuf.mod_alloc(base_addr=...)`,
`buffer=ncc.psum.alloc(fn)` where `fn(block_index, pdim_size, fdim_size)` returns where each block of a
block tensor lives. trnsim checks each placement against the core (partitions, bytes per partition, PSUM
banks) and then allocates as usual: a placement decides addresses, not values, and trnsim's dependency
tracking is by tensor, so the results and the instruction stream are those of the auto-allocated kernel.

The decorators (`skip_middle_end_transformations`, `enable_stack_allocator`, `force_auto_alloc`) select
Neuron compiler passes; the kernel they wrap runs unchanged. `no_reorder()` asks the compiler to keep
program order, which trnsim's in-order issue already does.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from trnsim.errors import TileShapeError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.sim.memory import MemoryKind

Placement = Callable[..., Any]


def _loc() -> str | None:
    from trnsim.nki.context import user_location

    return user_location()


def _ints(value: Any, what: str) -> tuple[int, ...]:
    items = value if isinstance(value, tuple | list) else (value,)
    try:
        out = tuple(operator.index(v) for v in items)
    except TypeError:
        raise UsageError(f"{what} must be an int or a tuple of ints, got {value!r}", _loc()) from None
    if any(v < 0 for v in out):
        raise UsageError(f"{what} cannot be negative, got {value!r}", _loc())
    return out


@dataclass(frozen=True)
class AllocatedBuffer:
    """An SBUF or PSUM buffer with a placement: a function, or a base address with rotating tiles."""

    memory_kind: MemoryKind
    placement: Placement | None = None
    base: int = 0  # base_addr (SBUF bytes) or base_bank (PSUM)
    base_partition: int = 0
    num_tiles: tuple[int, ...] = ()

    def __repr__(self) -> str:
        space = "sbuf" if self.memory_kind is MemoryKind.SBUF else "psum"
        how = "alloc(fn)" if self.placement is not None else f"mod_alloc(base={self.base}, tiles={self.num_tiles})"
        return f"nki.compiler.{space}.{how}"

    def check(self, shape: tuple[int, ...], itemsize: int, par_axis: int, core: CoreSpec) -> None:
        """Each block's placement fits the core: partitions, bytes per partition, and PSUM banks."""
        blocks = shape[:par_axis]
        pdim = shape[par_axis] if len(shape) > par_axis else 1
        fdim_bytes = itemsize
        for s in shape[par_axis + 1 :]:
            fdim_bytes *= s
        for index in itertools.product(*(range(b) for b in blocks)):
            self._check_block(index, pdim, fdim_bytes, itemsize, core)

    def _check_block(self, index: tuple[int, ...], pdim: int, fdim_bytes: int, itemsize: int, core: CoreSpec) -> None:
        if self.placement is None:
            return  # mod_alloc's base and tile counts were checked when it was made; tiles rotate in range
        got = self.placement(index, pdim, fdim_bytes // itemsize)
        psum = self.memory_kind is MemoryKind.PSUM
        want = 3 if psum else 2
        if not isinstance(got, tuple | list) or len(got) != want:
            form = "(bank, start_partition, byte_addr)" if psum else "(start_partition, byte_addr)"
            raise UsageError(f"{self!r}: the placement function must return {form}, got {got!r}", _loc())
        vals = _ints(tuple(got), "a placement")
        if psum:
            bank, start_p, addr = vals
            if bank >= core.psum.banks or addr + fdim_bytes > core.psum.bank_bytes:
                raise TileShapeError(
                    f"{self!r}: block {index} at bank {bank} byte {addr} ({fdim_bytes} bytes per partition) is "
                    f"outside PSUM ({core.psum.banks} banks of {core.psum.bank_bytes} bytes per partition)",
                    _loc(),
                    rule="psum-bank",
                )
            partitions = core.psum.partitions
        else:
            start_p, addr = vals
            if addr + fdim_bytes > core.sbuf.partition_bytes:
                raise TileShapeError(
                    f"{self!r}: block {index} at byte {addr} ({fdim_bytes} bytes per partition) is outside "
                    f"SBUF ({core.sbuf.partition_bytes} bytes per partition)",
                    _loc(),
                    rule="sbuf",
                )
            partitions = core.sbuf.partitions
        if start_p + pdim > partitions:
            raise TileShapeError(
                f"{self!r}: block {index} starts at partition {start_p} with {pdim} partitions; "
                f"the core has {partitions}",
                _loc(),
                rule="partitions",
            )


class _MemorySpace:
    """`nki.compiler.sbuf` / `nki.compiler.psum`: ways to place a tile in that memory."""

    def __init__(self, kind: MemoryKind) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"nki.compiler.{'sbuf' if self.kind is MemoryKind.SBUF else 'psum'}"

    def alloc(self, func: Placement) -> AllocatedBuffer:
        """Place each block with `func(block_index, pdim_size, fdim_size)`."""
        if not callable(func):
            raise UsageError(f"{self!r}.alloc takes a placement function, got {func!r}", _loc())
        return AllocatedBuffer(self.kind, placement=func)

    def auto_alloc(self) -> MemoryKind:
        return self.kind

    def mod_alloc(
        self,
        base_addr: int | None = None,
        base_partition: int = 0,
        num_par_tiles: tuple[int, ...] = (),
        num_free_tiles: tuple[int, ...] = (),
        base_bank: int | None = None,
        num_bank_tiles: tuple[int, ...] = (),
    ) -> AllocatedBuffer:
        """Blocks rotate over `num_*_tiles` physical tiles from a base address (SBUF) or bank (PSUM)."""
        if self.kind is MemoryKind.PSUM:
            if base_addr is not None:
                raise UsageError("nki.compiler.psum.mod_alloc places by bank: use base_bank=, not base_addr=", _loc())
            (base,) = _ints(0 if base_bank is None else base_bank, "base_bank")
            tiles = _ints(num_bank_tiles, "num_bank_tiles")
        else:
            if base_bank is not None:
                raise UsageError("nki.compiler.sbuf.mod_alloc places by byte: use base_addr=, not base_bank=", _loc())
            (base,) = _ints(0 if base_addr is None else base_addr, "base_addr")
            tiles = _ints(num_free_tiles, "num_free_tiles") + _ints(num_par_tiles, "num_par_tiles")
        if any(t == 0 for t in tiles):
            raise UsageError(f"{self!r}.mod_alloc: tile counts must be positive, got {tiles}", _loc())
        (part,) = _ints(base_partition, "base_partition")
        return AllocatedBuffer(self.kind, base=base, base_partition=part, num_tiles=tiles)


sbuf = _MemorySpace(MemoryKind.SBUF)
psum = _MemorySpace(MemoryKind.PSUM)


def memory_kind(buffer: Any) -> Any:
    """The memory an `nl.ndarray(buffer=...)` value names: AllocatedBuffer and spaces map to theirs."""
    if isinstance(buffer, AllocatedBuffer):
        return buffer.memory_kind
    if isinstance(buffer, _MemorySpace):
        return buffer.kind
    return buffer


def _decorator(fn: Callable[..., Any] | None, name: str) -> Any:
    if fn is None:
        return lambda f: _decorator(f, name)
    if not callable(fn):
        raise UsageError(f"nki.compiler.{name} decorates a kernel function, got {fn!r}", _loc())
    return fn


def skip_middle_end_transformations(fn: Callable[..., Any] | None = None) -> Any:
    """Skip the Neuron compiler's middle-end passes for this kernel (no effect on what it computes)."""
    return _decorator(fn, "skip_middle_end_transformations")


def enable_stack_allocator(fn: Callable[..., Any] | None = None, log_level: Any = None) -> Any:
    """Use the compiler's stack allocator for this kernel's tiles (trnsim allocates the same way for all)."""
    return _decorator(fn, "enable_stack_allocator")


def force_auto_alloc(fn: Callable[..., Any] | None = None) -> Any:
    """Ignore the kernel's explicit placements and allocate automatically."""
    return _decorator(fn, "force_auto_alloc")


@contextmanager
def no_reorder() -> Iterator[None]:
    """Keep the instructions of this block in program order (trnsim issues in program order anyway)."""
    yield


__all__ = [
    "AllocatedBuffer",
    "enable_stack_allocator",
    "force_auto_alloc",
    "memory_kind",
    "no_reorder",
    "psum",
    "sbuf",
    "skip_middle_end_transformations",
]
