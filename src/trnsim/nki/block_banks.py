"""Legacy block tensors whose blocks get SBUF/PSUM bytes one at a time, by lifetime.

`nl.ndarray((32, 8, nl.par_dim(128), 512), nl.float32, buffer=nl.psum)` has two block dims before the
partition dim; such a tensor may be far larger than PSUM (AWS's attention tutorial, v3-v11). The Neuron
compiler gives each block its bytes only while it is alive. When a block tensor does not fit as a whole,
trnsim does the same: a block gets its bytes (PSUM banks) when it is first written, and keeps them until
it has been read since its last write and a new tensor or block needs the room, the least recently used
such block first. A block still waiting to be read is live: when the live blocks and tensors need more
than the memory holds, that is a CapacityError as before. Reading a block whose bytes went to another
owner is an error too (its values are also poisoned, so a partial rewrite cannot expose stale data).
"""

from __future__ import annotations

import itertools
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

from trnsim import dtypes
from trnsim.errors import CapacityError
from trnsim.sim.memory import Allocation, AllocationRecord, MemorySpace

if TYPE_CHECKING:
    from trnsim.nki.tensor import NkiTensor
    from trnsim.sim.machine import Machine

Block = tuple[int, ...]
_ticks = itertools.count(1)  # one clock for every block tensor, so the least recently used block is global


class BlockBanks:
    """Which blocks of one block tensor hold bytes now (offset, read since written, last use) and which lost them."""

    def __init__(self, alloc: Allocation, space: MemorySpace, par_axis: int) -> None:
        self._alloc = weakref.ref(alloc)
        self.space = space
        self.par_axis = par_axis
        self.name = alloc.name or "tensor"
        self.owner = alloc.id
        self.block_shape = alloc.shape[par_axis:]
        self.block_bytes = space.block_bytes(self.block_shape, alloc.dtype)
        self.dtype = alloc.dtype
        self.live: dict[Block, list[Any]] = {}  # block -> [offset, read since its last write, last use tick]
        self.lost: dict[Block, str] = {}  # block -> who took its bytes

    def blocks_of(self, view: NkiTensor) -> list[Block]:
        """The blocks a view touches (every block index its key can reach in the block dims)."""
        per_dim: list[Any] = []
        for k in view.key[: self.par_axis]:
            if isinstance(k, tuple):
                per_dim.append(range(*k))
            elif isinstance(k, np.ndarray):
                per_dim.append(np.unique(k).tolist())
            else:
                per_dim.append((int(k),))
        return list(itertools.product(*per_dim))

    def read(self, view: NkiTensor, location: str) -> None:
        for b in self.blocks_of(view):
            if b in self.lost:
                raise CapacityError(
                    f"{self.space.kind.upper()} block {self.name}{list(b)} is read after its bytes went to "
                    f"{self.lost[b]}: the blocks and tensors live at once need more than the "
                    f"{self.space.capacity} bytes per partition of {self.space.kind.upper()} (a block lives from "
                    "its write until its last read; read each block before writing the blocks that replace it)",
                    location,
                    rule=f"{self.space.kind}-capacity",
                )
            entry = self.live.get(b)
            if entry is not None:  # a never-written block has no bytes: the read sees poison, as for any tensor
                entry[1], entry[2] = True, next(_ticks)

    def write(self, view: NkiTensor, location: str) -> None:
        for b in self.blocks_of(view):
            entry = self.live.get(b)
            if entry is not None:
                entry[1], entry[2] = False, next(_ticks)
                continue
            label = f"{self.name}{list(b)}"
            offset = self.space.reserve_block(
                self.block_bytes, label, self.block_shape, self.dtype, self.owner, location
            )
            self.live[b] = [offset, False, next(_ticks)]
            if self.lost.pop(b, None) is not None:
                self._poison(b)

    def oldest_finished(self) -> int | None:
        """Last-use tick of the least recently used block read since its last write; None if none."""
        ticks = [e[2] for e in self.live.values() if e[1]]
        return min(ticks) if ticks else None

    def end_oldest(self, taker: str) -> None:
        """End the lifetime of the least recently used finished block: its bytes go to `taker`."""
        b = min((b for b, e in self.live.items() if e[1]), key=lambda b: self.live[b][2])
        offset = self.live.pop(b)[0]
        self.space.release_block(offset, self.owner)
        self.lost[b] = taker
        self._poison(b)

    def release_all(self) -> None:
        """The tensor is gone: every block's bytes are free."""
        for offset, _, _ in self.live.values():
            self.space.release_block(offset, self.owner)
        self.live.clear()

    def _poison(self, b: Block) -> None:
        """Forget a block's values (functional mode): what is read before the next write is poison."""
        alloc = self._alloc()
        if alloc is None or alloc.storage is None:
            return
        alloc.storage[b] = dtypes.poison_value(alloc.dtype)
        if alloc.fully_written:  # every element was written: from now on a mask says which still are
            alloc.fully_written = False
            alloc.written = np.ones(alloc.shape, dtype=bool)
        written = alloc.written_mask(create=True)
        assert written is not None
        written[b] = False


def allocate_blocks(
    machine: Machine, kind: Any, shape: tuple[int, ...], dtype: np.dtype[Any], name: str, core: int, par_axis: int
) -> Allocation:
    """A block tensor whose blocks get bytes when written (see the module docstring); no bytes yet."""
    space = machine.space(kind, core)
    alloc = Allocation(kind, shape, dtype, name, core, 0, 0, machine.functional)
    banks = BlockBanks(alloc, space, par_axis)
    alloc.nbytes = banks.block_bytes
    alloc.blocks = banks
    space.block_owners.add(banks)
    weakref.finalize(alloc, banks.release_all)
    machine.allocations[alloc.id] = AllocationRecord(kind, core, 0, banks.block_bytes, len(machine.instructions))
    return alloc


def track_whole(alloc: Allocation, space: MemorySpace) -> None:
    """A PSUM tile that already holds its bytes: one block, which may give them up once finished.

    Python keeps a tile alive as long as a variable names it; the compiler frees it after its last use.
    When PSUM would otherwise be full, a tile read since its last write gives its banks up the same way a
    finished block does (a later read of it is an error), so a stale variable does not hold PSUM.
    """
    banks = BlockBanks(alloc, space, 0)
    banks.live[()] = [alloc.offset, False, next(_ticks)]
    alloc.blocks = banks
    space.block_owners.add(banks)
    weakref.finalize(alloc, banks.release_all)  # bytes it took again after giving its first ones up


def track(reads: list[NkiTensor], writes: list[NkiTensor], location: str) -> None:
    """Tell the block tensors among an instruction's operands which blocks it reads, then writes."""
    for t in reads:
        banks = t.alloc.blocks
        if banks is not None:
            _whole_view(t, location).read(t, location)
    for t in writes:
        banks = t.alloc.blocks
        if banks is not None:
            _whole_view(t, location).write(t, location)


def _whole_view(t: NkiTensor, location: str) -> BlockBanks:
    if t.alloc.root is not t.alloc and t.alloc.blocks.par_axis > 0:
        raise CapacityError(
            f"{t.alloc.root.describe()} is larger than memory and gets bytes block by block; it cannot be "
            "reshaped (index its blocks instead)",
            location,
        )
    banks: BlockBanks = t.alloc.blocks
    return banks
