"""Operator sugar on tiles: legacy NKI lets kernels write `a + b`, `t * 2.0`, `psum += ...`, `t.astype(...)`.

Each operator is an nki.language call on the tile. Those calls build on tensors, so tensors cannot
import them: nki.language_impl installs them here (`install_tile_language`) when it is imported, which
importing trnsim.nki always does.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from trnsim.errors import InternalError, UsageError
from trnsim.nki.context import user_location
from trnsim.sim.memory import MemoryKind

T = TypeVar("T", bound="TileOperators")


@dataclass(frozen=True)
class TileLanguage:
    """The nki.language calls that tile operators and `t[...] = value` stand for (they take and return tiles)."""

    assign: Callable[[Any, Any], None]
    accumulate: Callable[[Any, Any], None]
    copy: Callable[..., Any]
    broadcast_to: Callable[[Any, Any], Any]
    elementwise_binary: Callable[..., Any]


_installed: list[TileLanguage] = []


def install_tile_language(language: TileLanguage) -> None:
    _installed[:] = [language]


def tile_language() -> TileLanguage:
    if not _installed:
        raise InternalError("tile operators used before trnsim.nki.language_impl was imported", user_location())
    return _installed[0]


def _refs(x: Any) -> int:
    return sys.getrefcount(x)


class _Probe:
    """Stands in for a tile in `_calibrate`: the same frames between the expression and `_refs` as `_binary`."""

    alloc: Any = None

    def __add__(self, o: Any) -> int:
        return _probe_binary(self, o)


def _probe_binary(tile: Any, other: Any) -> int:
    return _refs(tile)


def _calibrate() -> tuple[int, int] | None:
    """References an operand has inside `_binary` when only the expression holds it, and its allocation's
    when one tile holds that; None where a named tile would count the same (then nothing is reused)."""
    named = _Probe()
    temporary = _Probe() + 0
    if named + 0 != temporary + 1:
        return None
    named.alloc = object()
    return temporary, _refs(named.alloc)


_SOLE_REFS = _calibrate()


def _dying(x: Any) -> bool:
    """Whether the expression holds the only reference to tile `x` and `x` the only one to its memory.

    The caller counts x's references itself (`_refs`) at the calibrated depth; this checks the memory side.
    """
    assert _SOLE_REFS is not None
    return _refs(x.alloc) == _SOLE_REFS[1]


def _binary(tile: T, other: Any, op: str, reverse: bool = False) -> T:
    """`tile <op> other`. A temporary operand that dies with this expression lends its bytes to the result
    (the Neuron compiler's buffer reuse: `a * x + b * y` needs two temporaries live, not three)."""
    binary = tile_language().elementwise_binary
    reuse: Any = None
    if _SOLE_REFS is not None:
        if _refs(tile) == _SOLE_REFS[0] and _dying(tile):
            reuse = tile
        elif isinstance(other, TileOperators) and _refs(other) == _SOLE_REFS[0] and _dying(other):
            reuse = other
    return cast(T, binary(op, other, tile, reuse=reuse) if reverse else binary(op, tile, other, reuse=reuse))


class TileOperators:
    """Mixed into NkiTensor, which defines where the tile lives."""

    __slots__ = ()

    @property
    def buffer(self) -> MemoryKind:
        raise NotImplementedError

    def astype(self: T, dtype: Any) -> T:
        """A copy of this tile in a new SBUF tile of `dtype` (a tensor_copy, casting through fp32)."""
        if self.buffer is MemoryKind.HBM:
            raise UsageError(
                f"astype copies an on-chip tile, but {self!r} is in HBM: nl.load(t, dtype=...) it first",
                user_location(),
            )
        return cast(T, tile_language().copy(self, dtype=dtype))

    def broadcast_to(self: T, shape: Any) -> T:
        """Legacy `tile.broadcast_to(shape)`: the same as nl.broadcast_to(tile, shape)."""
        return cast(T, tile_language().broadcast_to(self, shape))

    def __add__(self: T, o: Any) -> T:
        return _binary(self, o, "add")

    def __radd__(self: T, o: Any) -> T:
        return _binary(self, o, "add", True)

    def __sub__(self: T, o: Any) -> T:
        return _binary(self, o, "subtract")

    def __rsub__(self: T, o: Any) -> T:
        return _binary(self, o, "subtract", True)

    def __mul__(self: T, o: Any) -> T:
        return _binary(self, o, "multiply")

    def __rmul__(self: T, o: Any) -> T:
        return _binary(self, o, "multiply", True)

    def __truediv__(self: T, o: Any) -> T:
        return _binary(self, o, "divide")

    def __rtruediv__(self: T, o: Any) -> T:
        return _binary(self, o, "divide", True)

    def __pow__(self: T, o: Any) -> T:
        return _binary(self, o, "power")

    def __neg__(self: T) -> T:
        return _binary(self, -1.0, "multiply")

    def __iadd__(self: T, o: Any) -> T:
        tile_language().accumulate(self, o)
        return self
