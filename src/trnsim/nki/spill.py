"""The Neuron compiler's spills and refills, modelled on request (TRNSIM_SPILL=compiler; off by default).

NKI docs (memory-hierarchy overview): "If the total size of the live data being used by a NKI kernel overflows
the capacity of any on-chip memory, the Neuron compiler will insert the necessary spills or refills between that
memory and the next-tier memory in the hierarchy": PSUM spills to SBUF, SBUF to HBM. By default trnsim does not
(DESIGN.md: exceeding SBUF/PSUM is a CapacityError naming the kernel line); with TRNSIM_SPILL=compiler set when
a kernel is traced, a memory space that cannot place a new tile spills live tiles instead:

- Victim: never an operand of the instruction being issued. First, as without spilling, the least recently
  used finished block (PSUM tiles and blocks of block tensors, nki/block_banks.py: read since their last
  write, so likely dead): spilled rather than forgotten, since it may be read again. Then, after a cyclic GC
  (tiles kept only by reference cycles are dead), the least recently used tile of that memory (SBUF: whole
  tiles first, then blocks; PSUM: tiles and blocks, finished or not).
- Spill: one real instruction, costed by its isa record like any other: a DMA (dma_copy) from SBUF into an HBM
  scratch tensor, or an engine copy (tensor_copy, VectorE by the record's default) from PSUM into an SBUF
  scratch tile. Labelled "spill". The scratch SBUF tile may itself be spilled to HBM later.
- Refill: the first later instruction that touches a spilled tile (or block) first gets it back, into new
  bytes (possibly spilling others), with the reverse transfer, labelled "refill".
- Dependencies: the spill reads the tile (waits for its last write); the refill reads the scratch (waits for the
  spill). New bytes wait for the last access of their previous owner: a whole tile's freed bytes carry its
  allocation id (MemorySpace reuse, as for any freed tile); a refilled tile's new bytes, and a PSUM bank taken
  from a spilled block, are tied to the spill / previous owners by marker regions (fresh ids in Machine.reuse).
- A spill whose tile dies (Python drops it) before any refill was a dead store: the compiler's liveness would
  not have issued it. It is dropped in place (no bytes, no cycles, no dependencies; label "spill (dropped)").
- Values never move: a tile's numpy storage stays where it is, so functional results are bit-identical.
- Loud: one warning per kernel line in the profile with the count and bytes of spills and refills there.
"""

from __future__ import annotations

import itertools
import os
import weakref
from dataclasses import dataclass
from math import prod
from typing import TYPE_CHECKING, Any

from trnsim.errors import CompilerSpillWarning, UsageError, WarningText
from trnsim.isa.instruction import Instruction, Region
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.nki.tensor import NkiTensor
from trnsim.sim.memory import NEXT_TIER, SPILL_ENV, Allocation, MemoryKind, MemorySpace, new_id

if TYPE_CHECKING:
    from trnsim.nki.block_banks import BlockBanks
    from trnsim.sim.machine import Machine

Block = tuple[int, ...]
MODES = ("off", "compiler")
_seen: weakref.WeakSet[Any] = weakref.WeakSet()  # machines whose switch was read


def mode(location: str | None = None) -> str:
    """The switch: TRNSIM_SPILL=compiler models the compiler's spills; unset, empty or "off" does not."""
    value = os.environ.get(SPILL_ENV, "").strip().lower() or "off"
    if value not in MODES:
        raise UsageError(
            f"{SPILL_ENV}={value!r} (environment) is not a spill mode; use one of: {', '.join(MODES)}", location
        )
    return value


def attach(machine: Machine, location: str | None = None) -> None:
    """Read the switch once per machine; when on, every SBUF and PSUM space of it spills instead of failing."""
    if machine in _seen:
        return
    _seen.add(machine)
    if mode(location) == "compiler":
        spiller = Spiller(machine)
        for space in (*machine.sbuf, *machine.psum):
            space.spiller = spiller


def get(machine: Machine) -> Spiller | None:
    s = machine.sbuf[0].spiller if machine.sbuf else None
    return s if isinstance(s, Spiller) else None


def summary(machine: Machine) -> dict[str, int]:
    """Totals over the trace: spills and refills (count, bytes), and spills dropped as dead stores."""
    s = get(machine)
    names = {
        "spill": ("spills", "spill_bytes"),
        "refill": ("refills", "refill_bytes"),
        "dropped": ("dropped", "dropped_bytes"),
    }
    out = {k: 0 for pair in names.values() for k in pair}
    if s is not None:
        for per_line in s.stats.values():
            for (what, _), (n, b) in per_line.items():
                count, nbytes = names[what]
                out[count] += n
                out[nbytes] += b
    return out


@dataclass
class Spilled:
    scratch: Allocation  # where the values wait: HBM for an SBUF tile, SBUF for a PSUM tile or block
    store: Instruction  # the spill transfer (dropped in place if the tile is never refilled)
    nbytes: int  # bytes moved (all partitions)
    location: str
    kind: MemoryKind


class Spiller:
    """The compiler-spill model of one machine (installed as each SBUF/PSUM space's `spiller`)."""

    def __init__(self, machine: Machine) -> None:
        self._machine = weakref.ref(machine)
        self.busy = False  # issuing a spill or refill: its own operands need no refill
        self.ticks = itertools.count(1)
        self.used: dict[int, tuple[weakref.ref[Allocation], int]] = {}  # SBUF whole tiles: id -> (tile, last use)
        self.spilled: dict[int, Spilled] = {}  # whole tiles, by root allocation id
        self.spilled_blocks: dict[tuple[int, Block], Spilled] = {}  # (block tensor id, block) -> ...
        self.pinned: set[int] = set()  # the instruction being issued: its whole tiles ...
        self.pinned_blocks: set[tuple[int, Block]] = set()  # ... and blocks
        self.pending: list[int] = []  # markers of block spills whose bytes the next taker gets
        self.location = ""  # the kernel line of the instruction being issued
        self.stats: dict[str, dict[tuple[str, MemoryKind], list[int]]] = {}  # line -> (what, memory) -> [n, B]
        self._warning_at: dict[str, int] = {}  # line -> index of its warning in machine.warnings
        self._watched: set[int] = set()  # root ids with a death callback

    @property
    def machine(self) -> Machine:
        m = self._machine()
        assert m is not None
        return m

    # -- before an instruction: pin its operands and refill those that were spilled ------------------------
    def before_issue(self, tensors: list[NkiTensor], location: str) -> None:
        if self.busy:
            return
        self.location = location
        self.pinned.clear()
        self.pinned_blocks.clear()
        plan: list[tuple[Allocation, list[Block] | None]] = []
        for t in tensors:
            root = t.alloc.root
            if root.kind is MemoryKind.HBM:
                continue
            banks = root.blocks
            if banks is None:
                self.pinned.add(root.id)
                plan.append((root, None))
                continue
            if t.alloc is not root and banks.par_axis > 0:
                continue  # not allowed; block_banks.track says so
            touched = _blocks_of(banks, t)
            self.pinned_blocks.update((banks.owner, b) for b in touched)
            plan.append((root, touched))
        for root, blocks in plan:
            if blocks is None:
                if root.id in self.spilled:
                    self.refill_whole(root, location)
                self.used[root.id] = (weakref.ref(root), next(self.ticks))
            else:
                banks = root.blocks
                for b in blocks:
                    if (banks.owner, b) in self.spilled_blocks:
                        self.refill_block(banks, b, location)

    def holds(self, t: NkiTensor) -> bool:
        """Whether a view's tile, or a block it touches, is spilled now."""
        root = t.alloc.root
        if root.id in self.spilled:
            return True
        banks = root.blocks
        return banks is not None and any((banks.owner, b) in self.spilled_blocks for b in _blocks_of(banks, t))

    def after_track(self, ins: Instruction) -> None:
        """The instruction that takes bytes freed by block spills waits for those spills (marker regions)."""
        if self.pending:
            _wait_for(self.machine, ins, tuple(self.pending))
            self.pending.clear()

    # -- the memory space asks for room ------------------------------------------------------------------
    def __call__(self, space: MemorySpace, taker: str, location: str | None, finished: bool) -> bool:
        """Spill one tile of `space` (with `finished`: only a block read since its last write); False if none."""
        loc = location or self.location
        if space.kind is MemoryKind.SBUF and not finished:
            whole = self._whole_victim(space)
            if whole is not None:
                self.evict_whole(space, whole, loc)
                return True
        block = self._block_victim(space, finished)
        if block is None:
            return False
        self.evict_block(space, block[0], block[1], loc)
        return True

    def _whole_victim(self, space: MemorySpace) -> Allocation | None:
        best: tuple[int, Allocation] | None = None
        for aid, (ref, tick) in list(self.used.items()):
            a = ref()
            if a is None:
                del self.used[aid]
                continue
            if aid in self.pinned or a.core != space.core or a.kind is not space.kind or not space.resident(a):
                continue
            if best is None or tick < best[0]:
                best = (tick, a)
        return None if best is None else best[1]

    def _block_victim(self, space: MemorySpace, finished: bool) -> tuple[BlockBanks, Block] | None:
        best: tuple[int, BlockBanks, Block] | None = None
        for banks in list(space.block_owners):
            for b, entry in banks.live.items():
                if (finished and not entry[1]) or (banks.owner, b) in self.pinned_blocks:
                    continue
                if best is None or entry[2] < best[0]:
                    best = (entry[2], banks, b)
        return None if best is None else (best[1], best[2])

    # -- spills --------------------------------------------------------------------------------------------
    def evict_whole(self, space: MemorySpace, a: Allocation, location: str) -> None:
        scratch = self._scratch(a.shape, a.dtype, a.name, space.kind, a.core, location)
        store = self._copy(space.kind, NkiTensor(scratch), NkiTensor(a), location, "spill")
        space.release_now(a)  # its bytes wait for its last access, the spill (reuse by its id)
        del self.used[a.id]
        nbytes = prod(a.shape) * a.dtype.itemsize
        self.spilled[a.id] = Spilled(scratch, store, nbytes, location, space.kind)
        self._watch(a)
        self._count(location, "spill", space.kind, nbytes)

    def evict_block(self, space: MemorySpace, banks: BlockBanks, b: Block, location: str) -> None:
        alloc = banks._alloc()
        assert alloc is not None  # a dead tensor's blocks have no bytes (release_all)
        scratch = self._scratch(banks.block_shape, banks.dtype, banks.name, space.kind, alloc.core, location)
        view = NkiTensor(alloc)[b] if b else NkiTensor(alloc)
        store = self._copy(space.kind, NkiTensor(scratch), view, location, "spill")
        marker = new_id()
        store.reads = (*store.reads, _marker_region(marker))
        self.pending.append(marker)
        offset = banks.live.pop(b)[0]
        space.release_block(offset, banks.owner)
        nbytes = prod(banks.block_shape) * banks.dtype.itemsize
        self.spilled_blocks[(banks.owner, b)] = Spilled(scratch, store, nbytes, location, space.kind)
        self._watch(alloc)
        self._count(location, "spill", space.kind, nbytes)

    def _scratch(self, shape: tuple[int, ...], dtype: Any, name: str, kind: MemoryKind, core: int, loc: str) -> Any:
        tier = MemoryKind.HBM if kind is MemoryKind.SBUF else MemoryKind.SBUF
        scratch = self.machine.allocate(tier, shape, dtype, f"{name or 'tile'} (spilled)", core, loc)
        if tier is MemoryKind.SBUF:  # a PSUM spill's SBUF copy may itself be spilled to HBM, least recently used
            self.used[scratch.id] = (weakref.ref(scratch), next(self.ticks))
        return scratch

    # -- refills -------------------------------------------------------------------------------------------
    def refill_whole(self, root: Allocation, location: str) -> None:
        rec = self.spilled.pop(root.id)
        space = self.machine.space(root.kind, root.core)
        reuses = space.place_again(root, location)
        ins = self._copy(root.kind, NkiTensor(root), NkiTensor(rec.scratch), location, "refill")
        if reuses:
            _wait_for(self.machine, ins, reuses)
        self._count(location, "refill", root.kind, rec.nbytes)

    def refill_block(self, banks: BlockBanks, b: Block, location: str) -> None:
        rec = self.spilled_blocks.pop((banks.owner, b))
        alloc = banks._alloc()
        assert alloc is not None
        label = f"{banks.name}{list(b)}"
        pending, self.pending = self.pending, []
        offset = banks.space.reserve_block(
            banks.block_bytes, label, banks.block_shape, banks.dtype, banks.owner, location
        )
        banks.live[b] = [offset, False, 0]  # the refill's write below stamps its last use
        banks.lost.pop(b, None)
        scratch = rec.scratch
        if scratch.id in self.spilled:  # the SBUF copy went on to HBM: it comes back first
            self.pinned.add(scratch.id)
            self.refill_whole(scratch, location)
        view = NkiTensor(alloc)[b] if b else NkiTensor(alloc)
        ins = self._copy(banks.space.kind, view, NkiTensor(scratch), location, "refill")
        self.used.pop(scratch.id, None)
        if self.pending:
            _wait_for(self.machine, ins, tuple(self.pending))
        self.pending = pending
        self._count(location, "refill", banks.space.kind, rec.nbytes)

    def _copy(self, kind: MemoryKind, dst: NkiTensor, src: NkiTensor, location: str, label: str) -> Instruction:
        """The transfer between `kind` and its next tier, through the one issue path (its record's rules and cost)."""
        from trnsim.nki.issue import issue  # issue.py calls into this module

        busy, self.busy = self.busy, True
        try:
            if kind is MemoryKind.SBUF:
                return issue(Opcode.DMA_COPY, dst, {"src": src}, None, location, label=label)
            return issue(Opcode.TENSOR_COPY, dst, {"src": src}, None, location, label=label)
        finally:
            self.busy = busy

    # -- dead stores -------------------------------------------------------------------------------------
    def _watch(self, alloc: Allocation) -> None:
        if alloc.id not in self._watched:
            self._watched.add(alloc.id)
            weakref.finalize(alloc, self._dead, alloc.id)

    def _dead(self, aid: int) -> None:
        """A tile died while spilled: its spill was a store nobody reads; drop it in place."""
        self._watched.discard(aid)
        self.used.pop(aid, None)
        gone = [self.spilled.pop(aid)] if aid in self.spilled else []
        for key in [k for k in self.spilled_blocks if k[0] == aid]:
            gone.append(self.spilled_blocks.pop(key))
        for rec in gone:
            _drop(rec.store)
            self._count(rec.location, "spill", rec.kind, -rec.nbytes, -1)
            self._count(rec.location, "dropped", rec.kind, rec.nbytes)

    # -- loud --------------------------------------------------------------------------------------------
    def _count(self, location: str, what: str, kind: MemoryKind, nbytes: int, n: int = 1) -> None:
        per_line = self.stats.setdefault(location, {})
        c = per_line.setdefault((what, kind), [0, 0])
        c[0] += n
        c[1] += nbytes
        machine = self._machine()
        if machine is None:
            return
        parts = []
        for (w, k), (cnt, b) in sorted(per_line.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
            if cnt == 0:
                continue
            if w == "spill":
                parts.append(f"{cnt} spill(s) {k.upper()} -> {NEXT_TIER[k]}, {b} B")
            elif w == "refill":
                parts.append(f"{cnt} refill(s) {NEXT_TIER[k]} -> {k.upper()}, {b} B")
            else:
                parts.append(f"{cnt} dead spill(s) of {k.upper()} tiles dropped, {b} B")
        message = WarningText(
            f"{location}: live tiles overflow on-chip memory; the compiler-spill model ({SPILL_ENV}=compiler) "
            f"issued {'; '.join(parts) or 'nothing'}",
            CompilerSpillWarning,
        )
        at = self._warning_at.get(location)
        if at is None:
            self._warning_at[location] = len(machine.warnings)
            machine.warnings.append(message)
        else:
            machine.warnings[at] = message


def _blocks_of(banks: BlockBanks, view: NkiTensor) -> list[Block]:
    try:
        return banks.blocks_of(view)
    except (TypeError, ValueError, AttributeError):  # a view without a plain key: every block it may reach
        return [*banks.live]


def _marker_region(aid: int) -> Region:
    """A one-element access of an allocation id nobody else touches: ties an instruction to Machine.reuse."""
    return (aid, 0, 1, 0, 1, 0, 1)


def _wait_for(machine: Machine, ins: Instruction, previous: tuple[int, ...]) -> None:
    """`ins` takes over bytes last used by the allocations (or spill markers) `previous`: it waits for them."""
    marker = new_id()
    machine.reuse[marker] = previous
    ins.reads = (*ins.reads, _marker_region(marker))


def _drop(ins: Instruction) -> None:
    """Turn a spill into a no-op: no bytes, no cycles, no dependencies, on a compute engine (no DMA queue)."""
    ins.reads = ()
    ins.writes = ()
    ins.cycles = 0.0
    ins.dma_bytes = ins.hbm_bytes = ins.dma_row_bytes = 0
    ins.dma_rows = 1
    ins.touches_psum = ins.touches_sbuf = False
    ins.engine = Engine.VECTOR
    ins.label = "spill (dropped)"
