"""NkiTensor's single-dimension view primitives of NKI 0.5: slice, select (static or dynamic) and vector_select.

NKI docs (nki.language.NkiTensor, deep-dives/nki-aps "Dynamic Access"): `t.slice(dim, start, end, step)` is
`t[..., start:end:step, ...]`; `t.select(dim, i)` picks one index and removes the dim; with an SBUF (1, 1)
integer tile (or a register) as the index the pick happens at run time, as `.ap(scalar_offset=...,
indirect_dim=dim)` does; `t.vector_select(0, offsets)` gives partition p row `offsets[p]` of an HBM tensor,
the indirect DMA gather of tensor_indirect.py. They build the same views as indexing and `.ap()`.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

from trnsim.errors import BoundsError, UsageError
from trnsim.nki.context import user_location
from trnsim.sim.memory import MemoryKind

if TYPE_CHECKING:
    from trnsim.nki.tensor import NkiTensor


class TensorSelect:
    """Mixin for NkiTensor: slice / select / vector_select."""

    __slots__ = ()

    def _dim(self, dim: Any, what: str) -> int:
        shape: tuple[int, ...] = self.shape  # type: ignore[attr-defined]
        try:
            d = operator.index(dim)
        except TypeError:
            raise UsageError(f"{what}: dim must be an int, got {dim!r}", user_location()) from None
        d = d + len(shape) if d < 0 else d
        if not 0 <= d < len(shape):
            raise UsageError(f"{what}: dim {dim} is out of range for a {len(shape)}-dim tensor", user_location())
        return d

    def slice(self, dim: int, start: int, end: int, step: int = 1) -> NkiTensor:
        """`t[..., start:end:step, ...]` on dim `dim` (0 <= start < end <= shape[dim], step >= 1)."""
        me: Any = self
        d = self._dim(dim, "slice")
        if not 0 <= start < end <= me.shape[d] or step < 1:
            raise BoundsError(
                f"slice({dim}, {start}, {end}, {step}) needs 0 <= start < end <= {me.shape[d]} and step >= 1",
                user_location(),
                rule="bounds",
            )
        return me[(slice(None),) * d + (slice(start, end, step),)]

    def select(self, dim: int, index: Any) -> NkiTensor:
        """One index of dim `dim`, the dim removed: an int (static) or a (1, 1) SBUF integer tile or register
        (dynamic, read at run time)."""
        me: Any = self
        d = self._dim(dim, "select")
        on_chip = me.buffer is not MemoryKind.HBM
        if on_chip and d == 0:
            raise UsageError(
                "select cannot remove the partition dim (dim 0) of an on-chip tensor; use slice(0, i, i + 1)",
                user_location(),
            )
        if isinstance(index, int) and not isinstance(index, bool):
            return me[(slice(None),) * d + (index,)]
        if me.is_indirect():
            raise UsageError("a view already indirect cannot take a dynamic select (one per tensor)", user_location())
        pattern = [pair for k, pair in enumerate(me.get_pattern()) if k != d]
        if not pattern:
            raise UsageError("a dynamic select needs a tensor of 2 or more dims", user_location())
        return me.ap(pattern, scalar_offset=index, indirect_dim=d)

    def vector_select(self, dim: int, vector_offset: Any) -> NkiTensor:
        """Partition p of the result is row `vector_offset[p]` of this HBM tensor (dim must be 0)."""
        if self._dim(dim, "vector_select") != 0:
            raise UsageError(f"vector_select supports dim=0 only (NKI docs), got {dim}", user_location())
        if not hasattr(vector_offset, "alloc"):
            raise UsageError(
                f"vector_select takes an SBUF tile of indices, got {type(vector_offset).__name__}", user_location()
            )
        me: Any = self
        return me[(vector_offset,)]
