"""Address spaces (HBM, SBUF, PSUM): explicit, bounded allocation and poisoned storage.

An Allocation (sim/allocation.py) owns one tensor's bytes. SBUF/PSUM allocations reserve a byte range in every partition
(the partition dim is the tensor's first dim); PSUM tiles occupy whole 2 KiB banks. The one exception is the
SBUF's last resort: a tile of at most 64 partitions that fits nowhere else may start at partition 64, over bytes
that only tiles of at most 64 partitions (starting at partition 0) use (MemorySpace.allocate). Storage is kept
only in functional mode and starts poisoned (NaN for floats, 4 for integers), so a read of unwritten
memory shows; `written` tracks which elements were written, to warn about such reads.
"""

from __future__ import annotations

import gc
import weakref
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Iterable
from math import prod
from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.errors import CapacityError
from trnsim.sim.allocation import Allocation, AllocationRecord, MemoryKind, new_id

# The allocation types are defined in sim/allocation.py and imported from here by most of the simulator.
__all__ = ["NEXT_TIER", "SPILL_ENV", "Allocation", "AllocationRecord", "MemoryKind", "MemorySpace", "new_id"]

# How many of the most recently freed byte ranges a new allocation steps over when it can (buffer rotation).
RECENT_FREES = 8
# The switch for the compiler-spill model (nki/spill.py): TRNSIM_SPILL=compiler; unset or "off": overflow is an error.
SPILL_ENV = "TRNSIM_SPILL"
# While spilling: allocations between two full cyclic-GC runs on overflow (a simulator-speed setting, not hardware).
FULL_GC_EVERY = 256
# Loop templates (nki/loop_template.py) watch a recorded body's allocations and frees: when set, called with
# ("alloc", allocation, (kind, shape, dtype, name, core, location, par_axis)), ("free", allocation id, None) and
# ("other", None, None) for byte reservations it cannot replay (blocks, refills).
WATCH: Callable[[str, Any, Any], None] | None = None


# The NKI architecture guide (trainium_inferentia2_arch.rst, "Accessing SBUF/PSUM tensors using compute engines"):
# the Neuron compiler's tensor allocator places a tensor of 32 < P <= 64 partitions at start partition 0 or 64 (and
# the engines move data across the halves for such tiles). MemorySpace uses the upper half only when a tile of at most
# UPPER_HALF partitions fits nowhere else, so every kernel that fits without it is placed exactly as before.
UPPER_HALF = 64


# Where the Neuron compiler spills each on-chip memory: "the next-tier memory in the hierarchy" (NKI docs,
# memory-hierarchy overview), PSUM -> SBUF -> HBM.
NEXT_TIER = {MemoryKind.SBUF: "HBM", MemoryKind.PSUM: "SBUF"}


class MemorySpace:
    """A bounded address space with first-fit allocation.

    For SBUF/PSUM, capacity and offsets are bytes per partition; for HBM, bytes.
    """

    def __init__(self, kind: MemoryKind, capacity: int, core: int = 0, granule: int = 1) -> None:
        self.kind = kind
        self.capacity = capacity
        self.core = core
        self.granule = granule  # PSUM allocates whole banks
        self._live: dict[int, tuple[int, str, tuple[int, ...], np.dtype[Any]]] = {}  # offset -> (size, name, ...)
        self._live_ids: dict[int, int] = {}  # offset -> allocation id
        self._offsets: list[int] = []  # the live offsets, sorted
        # Freed byte ranges (start, end, allocation id): a new allocation over them must wait for the old
        # tensor's last access, as reused addresses do on the hardware.
        self._freed: dict[int, tuple[int, int, int]] = {}  # by sequence number, in the order freed
        self._freed_at: list[tuple[int, int]] = []  # (start, sequence number) of each, sorted: the search index
        self._freed_span = 0  # the largest freed range's size: a range over [a, b) starts after a - this
        self._freed_seq = 0
        self._recent: deque[tuple[int, int]] = deque(maxlen=RECENT_FREES)  # last freed byte ranges
        self.used = 0
        self.peak = 0
        # Block tensors whose finished blocks give their bytes up when a new tensor or block needs them.
        self.block_owners: weakref.WeakSet[Any] = weakref.WeakSet()
        # The compiler-spill model (nki/spill.py), when on: frees bytes by spilling one live tile (only a finished
        # block, with True) to the next memory tier; False when nothing can be spilled. None: overflow is a
        # CapacityError (the default).
        self.spiller: Callable[[MemorySpace, str, str | None, bool], bool] | None = None
        self._full_gc_at = -FULL_GC_EVERY  # allocation id at the last full GC (while spilling)
        # SBUF only: partitions of the live allocations of at most UPPER_HALF partitions, by offset (a live offset
        # not here takes every partition), and the tiles placed at partition UPPER_HALF: id -> (start, end) bytes.
        self._low_parts: dict[int, int] = {}
        self._upper: dict[int, tuple[int, int]] = {}
        self._upper_freed: list[tuple[int, int, int]] = []  # (start, end, id) of every upper tile freed

    def _place(self, size: int) -> int | None:
        """Lowest free address that avoids the bytes of the last few freed tensors; else the lowest at all.

        Packing low (first fit) keeps free space in one piece; stepping over recently freed bytes gives
        the rotation a compiler's multi-buffering allocator gives, so a new tile rarely has to wait for
        the readers of the tile it replaces.
        """
        # Gaps in address order (live offsets are kept sorted), each tried as it is found: the first that
        # takes `size` clear of the recent frees wins, else the first that takes it at all.
        live = self._live
        spans: Iterable[tuple[int, int]] = (
            sorted([*((o, o + live[o][0]) for o in self._offsets), *self._upper.values()])  # upper tiles too
            if self._upper
            else ((o, o + live[o][0]) for o in self._offsets)
        )
        recent = list(self._recent)
        first_fit: int | None = None
        cursor = 0
        for off, end in spans:
            if off - cursor >= size:
                start = _clear_of(recent, cursor, off, size)
                if start is not None:
                    return start
                if first_fit is None:
                    first_fit = cursor
            if end > cursor:
                cursor = end
        if self.capacity - cursor >= size:
            start = _clear_of(recent, cursor, self.capacity, size)
            if start is not None:
                return start
            if first_fit is None:
                first_fit = cursor
        return first_fit

    def _place_upper(self, size: int) -> int | None:
        """Lowest offset for `size` bytes in partitions UPPER_HALF.. : clear of every tile that reaches them (a
        tile of more than UPPER_HALF partitions, a block, another upper tile); None if there is none."""
        live, low = self._live, self._low_parts
        blocking = sorted([*((o, o + live[o][0]) for o in self._offsets if o not in low), *self._upper.values()])
        for start in (0, *(end for _, end in blocking)):
            end = start + size
            if end <= self.capacity and all(end <= lo or hi <= start for lo, hi in blocking):
                return start
        return None

    def allocate(
        self,
        shape: tuple[int, ...],
        dtype: np.dtype[Any],
        name: str,
        functional: bool,
        location: str | None,
        par_axis: int = 0,
    ) -> Allocation:
        itemsize = dtype.itemsize
        if self.kind is MemoryKind.HBM:
            need = prod(shape) * itemsize
        else:
            need = prod(shape) // max(1, shape[par_axis]) * itemsize
        size = -(-max(need, 1) // self.granule) * self.granule
        low = self.kind is MemoryKind.SBUF and bool(shape) and shape[par_axis] <= UPPER_HALF
        try:
            offset = self._fit(size, name, shape, dtype, location)
        except CapacityError:
            upper = self._place_upper(size) if low else None
            if upper is None:
                raise
            return self._allocate_upper(shape, dtype, name, functional, upper, size)
        alloc = Allocation(self.kind, shape, dtype, name, self.core, offset, size, functional)
        alloc.reuses = self._take(alloc, offset)
        if low:
            self._low_parts[offset] = shape[par_axis]
        if WATCH is not None:
            WATCH("alloc", alloc, (self.kind, shape, dtype, name, self.core, location, par_axis))
        return alloc

    def _allocate_upper(
        self, shape: tuple[int, ...], dtype: np.dtype[Any], name: str, functional: bool, offset: int, size: int
    ) -> Allocation:
        """A tile at partitions UPPER_HALF.. (see allocate); it waits for every freed tensor whose bytes it covers.
        It is never spilled (MemorySpace.resident says no), and `used` counts partition 0's bytes only."""
        alloc = Allocation(self.kind, shape, dtype, name, self.core, offset, size, functional)
        end = offset + size
        # every freed tensor over these bytes; freed upper tiles apart, since a lower tile that took their bytes
        # over (and dropped them from _freed) does not reach these partitions
        over = [aid for lo, hi, aid in (*self._freed.values(), *self._upper_freed) if lo < end and offset < hi]
        alloc.reuses = tuple(dict.fromkeys(over))
        self._upper[alloc.id] = (offset, end)
        weakref.finalize(alloc, self._release_upper, alloc.id)
        if WATCH is not None:
            WATCH("other", None, None)  # a loop template cannot replay this placement
        return alloc

    def _release_upper(self, owner: int) -> None:
        span = self._upper.pop(owner, None)
        if span is not None:  # a freed upper tile inside this one's bytes is reached through this one (its reuses)
            kept = [f for f in self._upper_freed if not (span[0] <= f[0] and f[1] <= span[1])]
            self._upper_freed = [*kept, (span[0], span[1], owner)]
            self._freed_seq += 1
            self._freed[self._freed_seq] = (span[0], span[1], owner)
            insort(self._freed_at, (span[0], self._freed_seq))
            self._freed_span = max(self._freed_span, span[1] - span[0])
            if WATCH is not None:
                WATCH("other", None, None)

    def _take(self, alloc: Allocation, offset: int) -> tuple[int, ...]:
        """Give `alloc` (a root) the bytes at `offset`; the freed allocations whose bytes it takes over."""
        size = alloc.nbytes
        end = offset + size
        reuses: tuple[int, ...] = ()
        freed, at = self._freed, self._freed_at
        if freed:  # the freed ranges over [offset, end), in the order freed
            i = bisect_left(at, (offset - self._freed_span + 1, -1))
            hits = sorted(seq for lo, seq in at[i : bisect_left(at, (end, -1), i)] if offset < freed[seq][1])
            reuses = tuple(freed[seq][2] for seq in hits)
            for seq in hits:  # ranges wholly under the new tensor are now reached through it
                lo, hi, _ = freed[seq]
                if offset <= lo and hi <= end:
                    del freed[seq]
                    del at[bisect_left(at, (lo, seq))]
        self._live[offset] = (size, alloc.name, alloc.shape, alloc.dtype)
        insort(self._offsets, offset)
        self._live_ids[offset] = alloc.id
        self.used += size
        self.peak = max(self.peak, self.used)
        # Free the bytes when the last reference to the tensor goes: Python liveness stands in for the
        # compiler's buffer liveness analysis.
        weakref.finalize(alloc, self._release, offset, alloc.id)
        return reuses

    def resident(self, alloc: Allocation) -> bool:
        """Whether a (root) allocation holds bytes here now (not spilled by the compiler-spill model)."""
        return self._live_ids.get(alloc.offset) == alloc.id

    def place_again(self, alloc: Allocation, location: str | None) -> tuple[int, ...]:
        """Bytes again for a spilled allocation (a refill), possibly elsewhere; the allocations whose freed
        bytes it takes over (its refill must wait for their last access)."""
        root = alloc.root
        offset = self._fit(root.nbytes, root.name, root.shape, root.dtype, location)
        root.offset = offset
        if WATCH is not None:
            WATCH("other", None, None)
        return self._take(root, offset)

    def block_bytes(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
        """Bytes per partition one block (a partition-dim tile of `shape`) takes, in whole granules."""
        need = prod(shape[1:]) * dtype.itemsize
        return -(-max(need, 1) // self.granule) * self.granule

    def reserve_block(
        self, size: int, name: str, shape: tuple[int, ...], dtype: np.dtype[Any], owner: int, location: str | None
    ) -> int:
        """Bytes for one block of block tensor `owner` (its blocks get banks one at a time); its offset."""
        offset = self._fit(size, name, shape, dtype, location)
        if WATCH is not None:
            WATCH("other", None, None)
        self._live[offset] = (size, name, shape, dtype)
        insort(self._offsets, offset)
        self._live_ids[offset] = owner
        self.used += size
        self.peak = max(self.peak, self.used)
        return offset

    def _fit(self, size: int, name: str, shape: tuple[int, ...], dtype: np.dtype[Any], location: str | None) -> int:
        """Where `size` bytes go: a free range, else one freed by ending finished blocks; else CapacityError."""
        offset = self._place(size)
        taker = f"{name or 'a tensor'} {list(shape)}"
        spiller = self.spiller
        # Finished blocks first (read since their last write: likely dead). With the compiler-spill model on they
        # are spilled rather than forgotten, since they may be read again (a dead one's spill is dropped later).
        while offset is None and (
            spiller(self, taker, location, True) if spiller is not None else self._end_oldest_finished_block(taker)
        ):
            offset = self._place(size)
        if offset is None:
            # tiles kept only by a reference cycle are dead but free their bytes when the cyclic GC runs
            self._collect()
            offset = self._place(size)
        while offset is None and spiller is not None and spiller(self, taker, location, False):
            offset = self._place(size)
        if offset is None:
            unit = "bytes" if self.kind is MemoryKind.HBM else "bytes per partition"
            live = sorted(self._live.values(), key=lambda v: -v[0])[:5]
            biggest = "; ".join(
                f"{nm or 'tensor'} {list(shp)} {dtypes.name(dt)} ({sz} {unit})" for sz, nm, shp, dt in live
            )
            raise CapacityError(
                f"{self.kind.upper()} capacity exceeded allocating {name or 'a tensor'} {list(shape)} "
                f"{dtypes.name(dtype)}: needs {size} {unit}, {self.used} of {self.capacity} in use by "
                f"{len(self._live)} live tensors (largest: {biggest or 'none'}){self._spill_hint()}",
                location,
                rule=f"{self.kind}-capacity",
            )
        return offset

    def _collect(self) -> None:
        """Run the cyclic GC. Without spilling overflows are rare (most end the trace): a full collection each
        time. With spilling they are routine and a full collection (0.1-1 s on a large heap) runs at most once
        per FULL_GC_EVERY allocations; in between only the young generations (where new garbage is) are."""
        if self.spiller is None:
            gc.collect()
            return
        now = new_id()
        if now - self._full_gc_at >= FULL_GC_EVERY:
            self._full_gc_at = now
            gc.collect()
        else:
            gc.collect(1)

    def _spill_hint(self) -> str:
        if self.kind is MemoryKind.HBM:
            return ""
        if self.spiller is not None:
            return "; nothing left to spill (the other live tiles are operands of the instruction being issued)"
        return (
            f"; the Neuron compiler would spill live tiles to {NEXT_TIER[self.kind]}: set {SPILL_ENV}=compiler "
            "to model that (costed spill and refill transfers)"
        )

    def _end_oldest_finished_block(self, taker: str) -> bool:
        """Free the least recently used block that was read since its last write (its lifetime is over)."""
        owners = [(t, o) for o in list(self.block_owners) if (t := o.oldest_finished()) is not None]
        if not owners:
            return False
        min(owners, key=lambda to: to[0])[1].end_oldest(taker)
        return True

    def release_block(self, offset: int, owner: int) -> None:
        """A block's lifetime ended: its bytes are free (new owners wait for its last access)."""
        self._release(offset, owner)

    def release_now(self, alloc: Allocation) -> None:
        """Free a tensor's bytes before its last Python reference goes (a fresh tile that was retargeted)."""
        self._release(alloc.root.offset, alloc.root.id)

    def _release(self, offset: int, owner: int | None = None) -> None:
        if self._upper and owner in self._upper:
            self._release_upper(owner)
            return
        if owner is not None and self._live_ids.get(offset) != owner:
            return  # released already, and the bytes may belong to someone else now
        entry = self._live.pop(offset, None)
        if entry is not None:
            if self._low_parts:
                self._low_parts.pop(offset, None)
            del self._offsets[bisect_left(self._offsets, offset)]
            self.used -= entry[0]
            freed = self._live_ids.pop(offset)
            self._freed_seq += 1
            self._freed[self._freed_seq] = (offset, offset + entry[0], freed)
            insort(self._freed_at, (offset, self._freed_seq))
            self._freed_span = max(self._freed_span, entry[0])
            self._recent.append((offset, offset + entry[0]))
            if WATCH is not None:
                WATCH("free", freed, None)


def _clear_of(recent: list[tuple[int, int]], lo: int, hi: int, size: int) -> int | None:
    """The lowest start in the gap [lo, hi) for `size` bytes that overlaps none of the `recent` ranges: the gap's
    start or the end of a recent range inside it; None if there is none."""
    for start in sorted({lo, *(e for _, e in recent if lo < e < hi)}):
        end = start + size
        if end <= hi and all(end <= r0 or r1 <= start for r0, r1 in recent):
            return start
    return None
