"""What an NKI tensor view occupies and how it is walked: its numpy index into the allocation's storage, its
bounds checks, its region (the box dependencies are tracked on), its values in functional mode, and the
partition / free sizes, strides and contiguous runs the ISA's cost rules read. A mixin of NkiTensor."""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING, Any

import numpy as np

from trnsim.errors import BoundsError
from trnsim.isa.instruction import Region
from trnsim.nki import fast_paths, replay_recorder
from trnsim.nki.boxes import _box3, _to_root_box
from trnsim.sim.memory import Allocation, MemoryKind

Slice = tuple[int, int, int]
Entry = int | Slice | np.ndarray


def _slice_len(s: Slice) -> int:
    start, stop, step = s
    return max(0, -(-(stop - start) // step))


def _slice_bounds(key: tuple[Entry, ...]) -> tuple[list[int], list[int]]:
    """Per-allocation-dim inclusive bounds of a key without index arrays (region()'s, in one pass)."""
    lo: list[int] = []
    hi: list[int] = []
    for k in key:
        if type(k) is tuple:
            start, stop, step = k
            n = -(-(stop - start) // step)
            lo.append(start)
            hi.append(start + (n - 1) * step if n > 0 else start - 1)
        else:
            lo.append(k)  # type: ignore[arg-type]
            hi.append(k)  # type: ignore[arg-type]
    return lo, hi


class TensorMemory:
    """Mixin for NkiTensor: regions, values and DMA geometry of a view (its `alloc` and `key`)."""

    __slots__ = ()
    if TYPE_CHECKING:
        alloc: Allocation
        key: tuple[Entry, ...]
        shape: tuple[int, ...]
        _arrays: bool
        _region: Region | None
        _pattern_run: int | None

        @property
        def dtype(self) -> np.dtype[Any]: ...
        @property
        def buffer(self) -> MemoryKind: ...
        @property
        def itemsize(self) -> int: ...

    # -- regions and values --------------------------------------------------------------------------
    def np_index(self, clip: bool = False) -> tuple[Any, ...]:
        """The numpy index into the allocation's storage (index arrays clipped in range when asked)."""
        out: list[Any] = []
        for k, d in zip(self.key, self.alloc.shape):
            if isinstance(k, tuple):
                out.append(slice(k[0], k[1], k[2]))
            elif isinstance(k, np.ndarray):
                # in range (the usual case, checked when the instruction was issued): min/max cost half of a clip
                out.append(np.clip(k, 0, d - 1) if clip and k.size and (k.min() < 0 or k.max() >= d) else k)
            else:
                out.append(k)
        return tuple(out)

    def check_bounds(self, mask: np.ndarray | None, location: str) -> None:
        """Index arrays are bounds-checked where the instruction's mask lets them through."""
        if not self._arrays or (self._pattern_run is not None and fast_paths.enabled()):
            return  # a static access pattern's elements were all checked when the view was made
        for dim, (k, d) in enumerate(zip(self.key, self.alloc.shape)):
            if isinstance(k, np.ndarray):
                vals = np.broadcast_to(k, self.shape)
                if mask is not None:
                    vals = vals[np.broadcast_to(mask, self.shape)]
                if vals.size and (vals.min() < 0 or vals.max() >= d):
                    raise BoundsError(
                        f"index expression reaches {int(vals.min())}..{int(vals.max())} in dim {dim} of "
                        f"{self.alloc.describe()} (allowed 0..{d - 1}); add a mask= for ragged edges",
                        location,
                        rule="bounds",
                    )

    def region(self, mask: np.ndarray | None = None) -> Region:
        """Bounding box in the allocation's 3-D view [dim 0, dim 1, flattened rest] (elements)."""
        if self._region is not None and (mask is None or (not self._arrays and fast_paths.enabled())):
            return self._region  # a mask narrows only index arrays' boxes: slices and ints span theirs anyway
        if not self._arrays and fast_paths.enabled():
            self._region = self._box(*_slice_bounds(self.key))  # type: ignore[misc]  # NkiTensor's slot
            return self._region
        shape = self.alloc.shape
        lo = [0] * len(shape)
        hi = [0] * len(shape)
        for d, k in enumerate(self.key):
            if isinstance(k, tuple):
                n = _slice_len(k)
                lo[d], hi[d] = k[0], (k[0] + (n - 1) * k[2] if n else k[0] - 1)
            elif isinstance(k, np.ndarray):
                vals = np.broadcast_to(k, self.shape)
                if mask is not None:
                    vals = vals[np.broadcast_to(mask, self.shape)]
                if vals.size == 0:
                    lo[d], hi[d] = 0, -1
                else:
                    lo[d], hi[d] = int(vals.min()), int(vals.max())
            else:
                lo[d] = hi[d] = k
        reg = self._box(lo, hi)
        if mask is None or (not self._arrays and fast_paths.enabled()):
            self._region = reg  # type: ignore[misc]  # NkiTensor's slot
        return reg

    def _box(self, lo: list[int], hi: list[int]) -> Region:
        """The region of per-allocation-dim inclusive bounds `lo`..`hi` (empty where some hi < lo)."""
        for a, b in zip(lo, hi):
            if b < a:
                return (self.alloc.id, 0, 0, 0, 0, 0, 0)
        shape = self.alloc.shape
        reg: Region = (self.alloc.id, *_box3(shape, lo, hi))
        root = self.alloc.root
        if root is not self.alloc:
            reg = _to_root_box(reg, shape, root.shape, self.itemsize, root.dtype.itemsize)
        return reg

    def read(self) -> np.ndarray:
        """Values (functional mode), with index arrays clipped (masked-out lanes are never used)."""
        assert self.alloc.storage is not None
        if (rec := replay_recorder.RECORDING) is not None and not rec.inside:
            rec.host_read(self.alloc.describe())  # the kernel's Python sees values: no replay (functional_replay.py)
        if not self.alloc.root.fully_written:
            self.alloc.poison_unwritten()
        return self.alloc.storage[self.np_index(clip=True)]

    def partition_size(self) -> int:
        return self.shape[0] if self.shape else 1

    def free_size(self) -> int:
        return prod(self.shape[1:]) if len(self.shape) > 1 else 1

    def innermost_stride_bytes(self) -> int:
        """Byte stride of the innermost visible free dim (1 element when contiguous).

        On chip the partition dim (dim 0) is not walked by the free-axis access pattern, so it never counts.
        """
        first = 1 if self.buffer is not MemoryKind.HBM else 0
        for d in range(len(self.key) - 1, first - 1, -1):
            k = self.key[d]
            if isinstance(k, tuple):
                if _slice_len(k) <= 1:
                    continue
                return k[2] * prod(self.alloc.shape[d + 1 :]) * self.dtype.itemsize
        return self.dtype.itemsize

    def contiguous_run_bytes(self) -> int:
        """Bytes per contiguous run when this view is walked in order (a DMA descriptor's length)."""
        if self._pattern_run is not None and fast_paths.enabled():
            return self._pattern_run
        if self._arrays:
            # runs continue only while the innermost index steps by one element
            inner = self.key[-1]
            if isinstance(inner, np.ndarray) and self.shape and self.shape[-1] > 1:
                steps = np.diff(np.broadcast_to(inner, self.shape), axis=-1)
                if steps.size and np.all(steps == 1):
                    return self.dtype.itemsize * self.shape[-1]
            return self.dtype.itemsize
        run = 1
        full_inner = True
        for d in range(len(self.key) - 1, -1, -1):
            k = self.key[d]
            dim = self.alloc.shape[d]
            if isinstance(k, tuple):
                n = _slice_len(k)
                if not full_inner:
                    break
                if k[2] != 1:
                    break
                run *= n
                full_inner = n == dim
            # an int index keeps the run going only within a contiguous dim
        if self.buffer is not MemoryKind.HBM and self.key and isinstance(self.key[0], tuple):
            # SBUF/PSUM: every partition is its own run
            run = min(run, self.free_size())
        return max(1, run) * self.dtype.itemsize
