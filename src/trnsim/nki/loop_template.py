"""Loop bodies traced once: instruction templates stamped out by substitution (timing-only runs).

A kernel's loop body issues the same instructions every iteration, only on other tiles and at other offsets
(the next buffer of a rotation, the next k-tile). Tracing runs the kernel's Python once per instruction,
and that Python, not the instruction, is most of the cost. `Templates.run(key, bindings, body, *args)` runs
the body for real the first time a key comes up and records what it issued, each region written relative to
the binding (one of the tensors the caller passes in) of the same allocation: its allocation id taken from
the binding, its box as offsets from the binding's box starts. Later calls with that key and bindings of
the same extents, dtypes and memories are the previous ones moved by the difference between the bindings'
boxes: a constant shift per field. The next `verify` calls whose bindings sit elsewhere (other allocations
or offsets) still run for real, and each must equal the template's prediction in every Instruction field,
in order; from then on the key is stamped: its instructions are built from the template without running
the body. A mismatch, an operand that is not a view of a binding or of a tile the body allocated, or a block
tensor with block dims (nki/block_banks.py) makes the key run for real from then on.

Bodies that allocate: the recorded call also notes, in order among its instructions, each allocation it makes
(the allocator's arguments) and each free of one of them (sim/memory.WATCH); its regions in a tile it allocated
are kept as boxes in that tile. A stamped call makes the same allocations through Machine.allocate at the same
points of the instruction stream (so allocation ids, offsets, reuse entries and issued_before counters come
from the allocator itself, as a real call's would), drops each at the point the real call freed it, and
returns what the body returned: None, numbers, strings, and tuples/lists of them and of whole-tile or sliced
views of tiles it allocated (rebuilt on the stamped call's tiles). The verified calls must match allocations,
frees and the return value too. A tile the body allocated must be freed before it returns or be reachable only
through its return value (checked by reference count on the real calls); a body that reserves block bytes,
allocates a block tensor, leaves a fresh (retargetable) tile, or runs while the compiler-spill model is on
(TRNSIM_SPILL=compiler) runs for real.

The contract of a body (the caller's part; the checks above catch a broken one only where it shows):
- `key` (hashable) decides the body's Python control flow and every shape and offset relative to the
  bindings: two calls with one key and equivalent bindings issue the same instructions but for the shift;
- every tensor the body's instructions read or write is a view of one of `bindings`;
- the body has no Python side effects besides issuing instructions and allocating tiles: it keeps no tile
  after it returns except through its return value, and changes no kernel state (counters, rings, caches,
  cost estimates). What it depends on comes in through `key`, `bindings` and `args`.

Stamping replays what `nki.issue` and the builders do besides recording the instruction, in their order:
a read ends a fresh tile's retargeting (ctx.fresh), PSUM block tensors note the read and write
(block_banks.track, on the bindings: exact for tiles without block dims), Machine.emit records it, and an
nc_matmul opens its PSUM accumulation group (ctx.psum_touched). Functional runs (values need the numpy
work) and TRNSIM_TRACE_SHORTCUTS=0 (nki/fast_paths.py) always run the body.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable, Sequence
from dataclasses import fields
from operator import itemgetter
from typing import Any, cast

from trnsim.isa.instruction import Instruction, Region
from trnsim.isa.opcodes import Opcode
from trnsim.nki import block_banks, fast_paths
from trnsim.nki.context import current
from trnsim.nki.tensor import NkiTensor
from trnsim.sim import memory
from trnsim.sim.memory import MemoryKind

# builders that open a PSUM accumulation group at their destination (emit_matmul, emit_mx)
_OPENS_GROUP = frozenset({Opcode.NC_MATMUL, Opcode.NC_MATMUL_MX})
_FIELDS = [f.name for f in fields(Instruction)]
_READS, _WRITES, _OPCODE = (_FIELDS.index(f) for f in ("reads", "writes", "opcode"))
assert _WRITES == _READS + 1  # stamping builds Instruction(*head, reads, writes, *tail)
_LOCATION = _FIELDS.index("location") - _WRITES - 1  # in tail
_new = cast(Callable[..., Instruction], Instruction)
# (binding index, d0 start, d0 stop, d1 start, d1 stop, rest start, rest stop), offsets from the binding's box starts
Spec = tuple[int, int, int, int, int, int, int]


class _Template:
    """A recorded body: per instruction its field values and where its regions sit relative to the bindings (and,
    for a body that allocates, to its own tiles: binding index len(bindings) + j for its j-th allocation)."""

    __slots__ = ("allocs", "anchors", "events", "ins", "program", "ret", "specs", "steps", "verified")

    def __init__(
        self,
        ins: list[tuple[list[Any], tuple[Spec, ...], tuple[Spec, ...], int]],
        anchors: tuple[Region, ...],
        ret: Any = None,
        allocs: list[tuple[Any, ...]] | None = None,
        events: list[tuple[int, int, int]] | None = None,
    ):
        self.ins = ins  # per instruction: its field values, read and write specs, number of source operands
        self.anchors = anchors  # the bindings' boxes in the recorded call
        self.ret = ret  # the return value's description (_describe)
        self.allocs = allocs or []  # Machine.allocate's arguments, per allocation the body makes
        self.events = events or []  # (instructions issued before it, 1: allocation / 2: free, allocation index)
        self.verified = 0
        # for stamping: the distinct specs, and per instruction the indices of its reads and writes among them,
        # its block-bank events (binding, is a read) in track()'s order, and whether it opens a PSUM group
        index: dict[Spec, int] = {}
        self.specs: list[Spec] = []
        for _, rs, ws, _ in ins:
            for sp in (*rs, *ws):
                if sp not in index:
                    index[sp] = len(self.specs)
                    self.specs.append(sp)
        self.program = [
            (
                tuple(values[:_READS]),
                _getter([index[sp] for sp in rs]),
                _getter([index[sp] for sp in ws]),
                tuple(values[_WRITES + 1 :]),
                nsrc,
                tuple((sp[0], True) for sp in rs) + tuple((sp[0], False) for sp in ws),
                values[_OPCODE] in _OPENS_GROUP,
            )
            for values, rs, ws, nsrc in ins
        ]
        # a body that allocates: its instructions (0, k), allocations (1, j) and frees (2, j) in the order it made them
        self.steps: list[tuple[int, int]] = []
        if self.events:
            k = 0
            for pos, tag, j in self.events:
                while k < pos:
                    self.steps.append((0, k))
                    k += 1
                self.steps.append((tag, j))
            self.steps.extend((0, k) for k in range(k, len(ins)))


def _getter(indices: list[int]) -> Callable[[list[Region]], tuple[Region, ...]]:
    """The regions at `indices` of a list, as a tuple."""
    if not indices:
        return lambda placed: ()
    if len(indices) == 1:
        k = indices[0]
        return lambda placed: (placed[k],)
    return itemgetter(*indices)


def _spec(r: Region, where: dict[int, int], anchors: tuple[Region, ...]) -> Spec | None:
    i = where.get(r[0])
    if i is None:
        return None
    a = anchors[i]
    return (i, r[1] - a[1], r[2] - a[1], r[3] - a[3], r[4] - a[3], r[5] - a[5], r[6] - a[5])


def _place(s: Spec, anchors: Sequence[Region]) -> Region:
    a = anchors[s[0]]
    return (a[0], a[1] + s[1], a[1] + s[2], a[3] + s[3], a[3] + s[4], a[5] + s[5], a[5] + s[6])


_NEW = _Template([], ())  # no template recorded yet


_BAD = object()  # a return value that cannot be rebuilt


def _describe(out: Any, index: dict[int, int], leaves: list[NkiTensor]) -> Any:
    """A return value as data (tensors as views of the body's j-th allocation); _BAD if it cannot be rebuilt."""
    if out is None or isinstance(out, int | float | str):
        return out if isinstance(out, bool) or out is None else ("v", type(out), out)
    if isinstance(out, tuple | list):
        parts = [_describe(o, index, leaves) for o in out]
        return _BAD if any(p is _BAD for p in parts) else (type(out), tuple(parts))
    if type(out) is NkiTensor:
        a = out.alloc
        j = index.get(a.id)
        if j is None or a.root is not a or out._arrays or out._pattern_run is not None:
            return _BAD
        leaves.append(out)
        return ("n", j, out.key)
    return _BAD


def _build(desc: Any, held: list[Any]) -> Any:
    """The value _describe described, on the tiles in `held`."""
    if desc is None or isinstance(desc, bool):
        return desc
    tag = desc[0]
    if tag == "n":
        return NkiTensor(held[desc[1]], desc[2])
    if tag == "v":
        return desc[2]
    return tag(_build(d, held) for d in desc[1])


class Templates:
    """Instruction templates of one loop body (or of a few, by key), for one trace: see the module docstring."""

    def __init__(self, verify: int = 2) -> None:
        self.ctx = current()
        self.machine = self.ctx.machine
        self.on = fast_paths.enabled() and not self.machine.functional
        self.verify = verify
        self._by_key: dict[Hashable, _Template | None] = {}
        self.real = 0  # calls that ran the body (recorded, verified or not templated)
        self.stamped = 0  # calls stamped from a template

    def run(self, key: Hashable, bindings: Sequence[Any], body: Callable[..., Any], *args: Any) -> Any:
        """body(*args), which issues instructions on views of `bindings` (and of tiles it allocates) only, as
        `key` and the bindings say; what it returns."""
        if not self.on or memory.WATCH is not None:  # nested in a body being recorded: run it
            return body(*args)
        anchors = tuple([b.region() for b in bindings])
        allocs = [b.alloc for b in bindings]
        sig = tuple([(a[2] - a[1], a[4] - a[3], a[6] - a[5], al.dtype, al.kind) for a, al in zip(anchors, allocs)])
        full = (key, sig)
        tpl = self._by_key.get(full, _NEW)
        if tpl is _NEW:
            self.real += 1
            recorded, out = self._record(anchors, body, args)
            self._by_key[full] = recorded
            return out
        if tpl is None:
            self.real += 1
            return body(*args)
        if tpl.verified >= self.verify:
            banks = [al.blocks for al in allocs]
            if any(bk is not None and bk.par_axis for bk in banks) or (tpl.allocs and self._spilling()):
                # block dims: track() needs the real views; spills: the spill model's own bookkeeping
                self.real += 1
                return body(*args)
            self.stamped += 1
            if tpl.allocs:
                return self._stamp_allocating(tpl, bindings, banks, anchors)
            self._stamp(tpl, bindings, banks, anchors)
            return _build(tpl.ret, [])
        self.real += 1
        ok, out = self._check(tpl, anchors, body, args)
        if not ok:
            self._by_key[full] = None
        return out

    def _spilling(self) -> bool:
        return any(space.spiller is not None for space in (*self.machine.sbuf, *self.machine.psum))

    # -- recording and checking real calls ------------------------------------------------------------
    def _observe(self, body: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, Any, list[int]]:
        """Run the body for real, watching its allocations and frees: (its return value, (allocation arguments,
        events, return description) or None where it cannot be replayed, the new allocation ids)."""
        machine = self.machine
        n0, a0 = len(machine.instructions), len(machine.allocations)
        seen: list[tuple[int, str, Any, Any]] = []

        def watch(kind: str, obj: Any, info: Any) -> None:
            seen.append((len(machine.instructions) - n0, kind, obj.id if kind == "alloc" else obj, info))

        memory.WATCH = watch
        try:
            out = body(*args)
        finally:
            memory.WATCH = None
        index: dict[int, int] = {}
        alloc_args: list[tuple[Any, ...]] = []
        events: list[tuple[int, int, int]] = []
        ok = not self._spilling()
        for pos, kind, obj, info in seen:
            if kind == "alloc":
                index[obj] = len(alloc_args)
                events.append((pos, 1, len(alloc_args)))
                alloc_args.append(info)
                ok = ok and info[6] == 0  # no block dims
            elif kind == "free" and obj in index:
                events.append((pos, 2, index[obj]))
            else:  # another tile freed, or bytes reserved for a block or a refill
                ok = False
        ids = list(index)
        if not ok or len(machine.allocations) - a0 != len(ids) or any(i in self.ctx.fresh for i in ids):
            return out, None, ids
        leaves: list[NkiTensor] = []
        ret = _describe(out, index, leaves)
        if ret is _BAD:
            return out, None, ids
        freed = {j for _, tag, j in events if tag == 2}
        kept = {index[t.alloc.id] for t in leaves}
        if kept & freed or kept | freed != set(range(len(ids))):
            return out, None, ids  # a tile kept elsewhere than in the return value
        for j in kept:  # ... and only there: the return value's views are all that refer to it
            alloc = next(t.alloc for t in leaves if index[t.alloc.id] == j)
            views = sum(1 for t in leaves if t.alloc is alloc)
            if sys.getrefcount(alloc) != views + 2:  # + `alloc` and getrefcount's argument
                return out, None, ids
        return out, (alloc_args, events, ret), ids

    def _record(
        self, anchors: tuple[Region, ...], body: Callable[..., Any], args: tuple[Any, ...]
    ) -> tuple[_Template | None, Any]:
        machine = self.machine
        n0 = len(machine.instructions)
        out, seen, ids = self._observe(body, args)
        if seen is None:
            return None, out
        alloc_args, events, ret = seen
        anchors = anchors + tuple((i, 0, 0, 0, 0, 0, 0) for i in ids)
        where: dict[int, int] = {}
        for i, a in enumerate(anchors):
            where.setdefault(a[0], i)
        recorded = []
        for ins in machine.instructions[n0:]:
            reads = [_spec(r, where, anchors) for r in ins.reads]
            writes = [_spec(r, where, anchors) for r in ins.writes]
            rs = tuple(sp for sp in reads if sp is not None)
            ws = tuple(sp for sp in writes if sp is not None)
            if len(rs) < len(reads) or len(ws) < len(writes) or (ins.opcode in _OPENS_GROUP and not ws):
                return None, out  # an operand outside the bindings
            recorded.append(([getattr(ins, f) for f in _FIELDS], rs, ws, len(rs) - (1 if ins.accumulate else 0)))
        return _Template(recorded, anchors[: len(anchors) - len(ids)], ret, alloc_args, events), out

    def _predict(self, tpl: _Template, anchors: tuple[Region, ...]) -> list[Instruction]:
        out = []
        for values, rs, ws, _ in tpl.ins:
            v = list(values)
            v[_READS] = tuple(_place(s, anchors) for s in rs)
            v[_WRITES] = tuple(_place(s, anchors) for s in ws)
            out.append(Instruction(*v))
        return out

    def _check(
        self, tpl: _Template, anchors: tuple[Region, ...], body: Callable[..., Any], args: tuple[Any, ...]
    ) -> tuple[bool, Any]:
        """Run the body for real; whether it issued (and allocated, freed, returned) what the template predicts
        (counting as a verification when its bindings sit elsewhere than the recorded call's), and its result."""
        machine, touched = self.machine, self.ctx.psum_touched
        n0, t0 = len(machine.instructions), len(touched)
        before = set(touched) if any(p[6] for p in tpl.program) else set()
        out, seen, ids = self._observe(body, args)
        if seen is None or seen[0] != tpl.allocs or seen[1] != tpl.events or seen[2] != tpl.ret:
            return False, out
        predicted = self._predict(tpl, anchors + tuple((i, 0, 0, 0, 0, 0, 0) for i in ids))
        if machine.instructions[n0:] != predicted:
            return False, out
        opens = {p.writes[0] for p in predicted if p.opcode in _OPENS_GROUP}
        if len(touched) != t0 + len(opens - before) or not opens <= touched:
            return False, out
        if anchors != tpl.anchors or not anchors:
            tpl.verified += 1
        return True, out

    # -- stamping ---------------------------------------------------------------------------------------
    def _stamp(self, tpl: _Template, bindings: Sequence[Any], banks: list[Any], anchors: tuple[Region, ...]) -> None:
        ctx = self.ctx
        emit, fresh, touched = self.machine.emit, ctx.fresh, ctx.psum_touched
        tracked = any(bk is not None for bk in banks)
        ticks = block_banks._ticks
        placed = [
            (a[0], a[1] + s1, a[1] + s2, a[3] + s3, a[3] + s4, a[5] + s5, a[5] + s6)
            for i, s1, s2, s3, s4, s5, s6 in tpl.specs
            for a in (anchors[i],)
        ]
        for head, get_reads, get_writes, tail, nsrc, events, opens in tpl.program:
            reads = get_reads(placed)
            writes = get_writes(placed)
            if fresh:  # a read ends a fresh tile's retargeting (issue)
                for r in reads[:nsrc]:
                    fresh.pop(r[0], None)
            if tracked:  # block_banks.track on the bindings: a tile without block dims is one block, ()
                for i, is_read in events:
                    bk = banks[i]
                    if bk is None:
                        continue
                    entry = bk.live.get(())
                    if bk.lost or entry is None:  # the general path (an error, or bytes to reserve)
                        (bk.read if is_read else bk.write)(bindings[i], tail[_LOCATION])
                    else:
                        entry[1], entry[2] = is_read, next(ticks)
            emit(_new(*head, reads, writes, *tail))
            if opens:
                touched.add(writes[0])

    def _stamp_allocating(
        self, tpl: _Template, bindings: Sequence[Any], banks: list[Any], anchors: tuple[Region, ...]
    ) -> Any:
        """A body that allocates: its steps in order, allocations and frees real, instructions stamped."""
        ctx, machine = self.ctx, self.machine
        emit, fresh, touched = machine.emit, ctx.fresh, ctx.psum_touched
        ticks = block_banks._ticks
        places = list(anchors)
        banks = list(banks)
        held: list[Any] = []
        ins, allocs, program = tpl.ins, tpl.allocs, tpl.program
        for tag, j in tpl.steps:
            if tag == 0:
                _, rs, ws, nsrc = ins[j]
                head, _, _, tail, _, events, opens = program[j]
                reads = tuple([_place(sp, places) for sp in rs])
                writes = tuple([_place(sp, places) for sp in ws])
                if fresh:
                    for r in reads[:nsrc]:
                        fresh.pop(r[0], None)
                for i, is_read in events:
                    bk = banks[i]
                    if bk is None:
                        continue
                    entry = bk.live.get(())
                    if bk.lost or entry is None:
                        n = len(bindings)
                        (bk.read if is_read else bk.write)(
                            bindings[i] if i < n else NkiTensor(held[i - n]), tail[_LOCATION]
                        )
                    else:
                        entry[1], entry[2] = is_read, next(ticks)
                emit(_new(*head, reads, writes, *tail))
                if opens:
                    touched.add(writes[0])
            elif tag == 1:
                kind, core = allocs[j][0], allocs[j][4]
                alloc: Any = machine.allocate(*allocs[j])
                if kind is MemoryKind.PSUM:  # as tiles.new_tensor does
                    block_banks.track_whole(alloc, machine.space(kind, core))
                held.append(alloc)
                places.append((alloc.id, 0, 0, 0, 0, 0, 0))
                banks.append(alloc.blocks)
                alloc = None  # `held` keeps the only reference, so the free below frees it
            else:
                held[j] = None  # its last reference: the bytes are freed here, as in the real call
        return _build(tpl.ret, held)
