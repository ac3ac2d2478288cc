"""What one allocation is: its memory kind, id, shape, bytes and, in functional mode, its poisoned values and which
elements were written (sim/memory.py places allocations in an address space).
"""

from __future__ import annotations

import itertools
from enum import StrEnum
from math import prod
from typing import Any, NamedTuple

import numpy as np

from trnsim import dtypes

_ids = itertools.count(1)


def new_id() -> int:
    """A fresh allocation id (also for marker regions that tie an instruction to Machine.reuse)."""
    return next(_ids)


class MemoryKind(StrEnum):
    HBM = "hbm"
    SBUF = "sbuf"
    PSUM = "psum"


class AllocationRecord(NamedTuple):
    """What a trace needs about one allocation: its memory, core, size and when it was made."""

    kind: MemoryKind
    core: int
    offset: int  # first byte (per partition for SBUF/PSUM)
    nbytes: int  # bytes for HBM, bytes per partition for SBUF/PSUM (whole banks for PSUM)
    issued_before: int  # instructions already issued when it was allocated (0: before the kernel's first)


class Allocation:
    """One tensor's memory. `shape` is the canonical layout; views index into it."""

    __slots__ = (
        "__weakref__",
        "_root",
        "blocks",
        "core",
        "dtype",
        "fully_written",
        "id",
        "kind",
        "name",
        "nbytes",
        "offset",
        "poisoned",
        "reuses",
        "row_elems",
        "shape",
        "storage",
        "written",
        "written_count",
    )

    def __init__(
        self,
        kind: MemoryKind,
        shape: tuple[int, ...],
        dtype: np.dtype[Any],
        name: str,
        core: int,
        offset: int,
        nbytes: int,
        functional: bool,
    ) -> None:
        self.id = next(_ids)
        self.kind = kind
        self.shape = shape
        self.dtype = dtype
        self.name = name
        self.core = core
        self.offset = offset
        self.nbytes = nbytes
        self.row_elems = prod(shape[1:]) if len(shape) > 1 else 1
        self.storage: np.ndarray | None = None
        self.written: np.ndarray | None = None
        self.written_count: int | None = 0  # True elements of `written` (None: not known, see note_written)
        self.fully_written = False
        self.poisoned = False  # unwritten elements hold the poison value (writes only ever shrink that set)
        self.reuses: tuple[int, ...] = ()  # freed allocations whose bytes this one took over
        self._root: Allocation | None = None  # None: this is the root (no self-cycle, so refcounting frees it)
        self.blocks: Any = None  # nki.block_banks.BlockBanks when its blocks get banks one at a time
        if functional:
            # Poisoned lazily: only memory that is read before it is written ever gets the poison value.
            self.storage = np.empty(shape, dtype=dtype)

    def alias(self, shape: tuple[int, ...]) -> Allocation:
        """The same bytes seen with another shape (reshape of a whole tensor)."""
        root = self.root
        a = Allocation.__new__(Allocation)
        a.id, a.kind, a.dtype, a.name, a.core = root.id, root.kind, root.dtype, root.name, root.core
        a.offset, a.nbytes, a.fully_written, a.reuses, a.blocks = (
            root.offset,
            root.nbytes,
            root.fully_written,
            root.reuses,
            root.blocks,
        )
        a._root = root
        a.shape = shape
        a.row_elems = prod(shape[1:]) if len(shape) > 1 else 1
        a.storage = None if root.storage is None else root.storage.reshape(shape)
        a.written = None  # aliases use the root's mask (written_mask)
        return a

    @property
    def root(self) -> Allocation:
        """The allocation that owns the bytes (itself, unless this is a reshaped alias)."""
        return self._root if self._root is not None else self

    def mark_all_written(self) -> None:
        root = self.root
        root.fully_written = True
        root.written = None

    def written_mask(self, create: bool = False) -> np.ndarray | None:
        """Which elements were written (shaped like this view of the bytes); None: nothing partial yet.
        With create=True the caller may change the mask, so its count of written elements is no longer known."""
        root = self.root
        if root.written is None:
            if not create:
                return None
            root.written = np.zeros(root.shape, dtype=bool)
        if create:
            root.written_count = None
        return root.written if root is self else root.written.reshape(self.shape)

    def note_written(self, index: Any, size: int, distinct: bool) -> None:
        """Mark the `size` elements at numpy `index` (into this view of the bytes) written. When it selects each
        element at most once (`distinct`: slices, ints, or index arrays of an injective view), the number of
        written elements is kept, and the mask is dropped the moment it covers the whole allocation: later
        writes and reads skip it, and a tensor written tile by tile stops holding a byte per element."""
        root = self.root
        if root.fully_written:
            return
        if root.written is None:
            root.written = np.zeros(root.shape, dtype=bool)
            root.written_count = 0
        written = root.written if root is self else root.written.reshape(self.shape)
        count = root.written_count
        if distinct and count is not None:
            part = written[index]
            count += part.size - int(np.count_nonzero(part))
            written[index] = True
            root.written_count = count
            if count >= written.size:
                root.mark_all_written()
            return
        root.written_count = None  # repeated elements (index arrays) would be counted twice
        written[index] = True
        if size >= written.size and written.all():
            root.mark_all_written()

    def poison_unwritten(self) -> None:
        """Give every element nobody wrote the poison value (NaN for floats, 4 for integers)."""
        root = self.root
        if root.fully_written or root.storage is None or root.poisoned:
            return
        poison = dtypes.poison_value(root.dtype)
        if root.written is None:
            root.storage.fill(poison)
        else:
            root.storage[~root.written] = poison
        root.poisoned = True

    def describe(self) -> str:
        return f"{self.name or 'tensor'} {list(self.shape)} {dtypes.name(self.dtype)} in {self.kind}"
