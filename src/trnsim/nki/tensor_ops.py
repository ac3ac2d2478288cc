"""Operator sugar on tiles: legacy NKI lets kernels write `a + b`, `t * 2.0`, `psum += ...`, `t.astype(...)`.

Each operator is an nki.language call (language_impl) on the tile; the functions are imported at call
time because language_impl itself builds on tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from trnsim.errors import UsageError
from trnsim.sim.memory import MemoryKind

if TYPE_CHECKING:
    from trnsim.nki.tensor import NkiTensor


class TileOperators:
    __slots__ = ()

    def astype(self, dtype: Any) -> NkiTensor:
        """A copy of this tile in a new SBUF tile of `dtype` (a tensor_copy, casting through fp32)."""
        from trnsim.nki import language_impl
        from trnsim.nki.context import user_location

        if cast("NkiTensor", self).buffer is MemoryKind.HBM:
            raise UsageError(
                f"astype copies an on-chip tile, but {self!r} is in HBM: nl.load(t, dtype=...) it first",
                user_location(),
            )
        return language_impl.copy(cast("NkiTensor", self), dtype=dtype)

    def broadcast_to(self, shape: Any) -> NkiTensor:
        """Legacy `tile.broadcast_to(shape)`: the same as nl.broadcast_to(tile, shape)."""
        from trnsim.nki import language_impl

        return language_impl.broadcast_to(cast("NkiTensor", self), shape)

    def _binary(self, other: Any, op: str, reverse: bool = False) -> NkiTensor:
        from trnsim.nki import language_impl

        return (
            language_impl.elementwise_binary(op, other, cast("NkiTensor", self))
            if reverse
            else language_impl.elementwise_binary(op, cast("NkiTensor", self), other)
        )

    def __add__(self, o: Any) -> NkiTensor:
        return self._binary(o, "add")

    def __radd__(self, o: Any) -> NkiTensor:
        return self._binary(o, "add", True)

    def __sub__(self, o: Any) -> NkiTensor:
        return self._binary(o, "subtract")

    def __rsub__(self, o: Any) -> NkiTensor:
        return self._binary(o, "subtract", True)

    def __mul__(self, o: Any) -> NkiTensor:
        return self._binary(o, "multiply")

    def __rmul__(self, o: Any) -> NkiTensor:
        return self._binary(o, "multiply", True)

    def __truediv__(self, o: Any) -> NkiTensor:
        return self._binary(o, "divide")

    def __rtruediv__(self, o: Any) -> NkiTensor:
        return self._binary(o, "divide", True)

    def __pow__(self, o: Any) -> NkiTensor:
        return self._binary(o, "power")

    def __neg__(self) -> NkiTensor:
        return self._binary(-1.0, "multiply")

    def __iadd__(self, o: Any) -> NkiTensor:
        from trnsim.nki import language_impl

        language_impl.accumulate(cast("NkiTensor", self), o)
        return cast("NkiTensor", self)
