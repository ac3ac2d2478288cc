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
the body. A mismatch, an allocation, an operand that is not a view of a binding, or a block tensor with
block dims (nki/block_banks.py) makes the key run for real from then on.

The contract of a body (the caller's part; the checks above catch a broken one only where it shows):
- `key` (hashable) decides the body's Python control flow and every shape and offset relative to the
  bindings: two calls with one key and equivalent bindings issue the same instructions but for the shift;
- every tensor the body's instructions read or write is a view of one of `bindings`;
- the body has no Python side effects besides issuing instructions: it allocates nothing, keeps no tile
  after it returns, and changes no kernel state (counters, rings, caches, cost estimates). What it depends
  on comes in through `key`, `bindings` and `args`.

Stamping replays what `nki.issue` and the builders do besides recording the instruction, in their order:
a read ends a fresh tile's retargeting (ctx.fresh), PSUM block tensors note the read and write
(block_banks.track, on the bindings: exact for tiles without block dims), Machine.emit records it, and an
nc_matmul opens its PSUM accumulation group (ctx.psum_touched). Functional runs (values need the numpy
work) and TRNSIM_TRACE_SHORTCUTS=0 (nki/fast_paths.py) always run the body.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import fields
from operator import itemgetter
from typing import Any, cast

from trnsim.isa.instruction import Instruction, Region
from trnsim.isa.opcodes import Opcode
from trnsim.nki import block_banks, fast_paths
from trnsim.nki.context import current

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
    """A recorded body: per instruction its field values and where its regions sit relative to the bindings."""

    __slots__ = ("anchors", "ins", "program", "specs", "verified")

    def __init__(
        self, ins: list[tuple[list[Any], tuple[Spec, ...], tuple[Spec, ...], int]], anchors: tuple[Region, ...]
    ):
        self.ins = ins  # per instruction: its field values, read and write specs, number of source operands
        self.anchors = anchors  # the bindings' boxes in the recorded call
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


def _place(s: Spec, anchors: tuple[Region, ...]) -> Region:
    a = anchors[s[0]]
    return (a[0], a[1] + s[1], a[1] + s[2], a[3] + s[3], a[3] + s[4], a[5] + s[5], a[5] + s[6])


_NEW = _Template([], ())  # no template recorded yet


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

    def run(self, key: Hashable, bindings: Sequence[Any], body: Callable[..., None], *args: Any) -> None:
        """body(*args), which issues instructions on views of `bindings` only, as `key` and the bindings say."""
        if not self.on:
            body(*args)
            return
        anchors = tuple([b.region() for b in bindings])
        allocs = [b.alloc for b in bindings]
        sig = tuple([(a[2] - a[1], a[4] - a[3], a[6] - a[5], al.dtype, al.kind) for a, al in zip(anchors, allocs)])
        full = (key, sig)
        tpl = self._by_key.get(full, _NEW)
        if tpl is _NEW:
            self.real += 1
            self._by_key[full] = self._record(anchors, body, args)
        elif tpl is None:
            self.real += 1
            body(*args)
        elif tpl.verified >= self.verify:
            banks = [al.blocks for al in allocs]
            if any(bk is not None and bk.par_axis for bk in banks):  # block dims: track() needs the real views
                self.real += 1
                body(*args)
            else:
                self.stamped += 1
                self._stamp(tpl, bindings, banks, anchors)
        else:
            self.real += 1
            if not self._check(tpl, anchors, body, args):
                self._by_key[full] = None

    # -- recording and checking real calls ------------------------------------------------------------
    def _record(
        self, anchors: tuple[Region, ...], body: Callable[..., None], args: tuple[Any, ...]
    ) -> _Template | None:
        machine = self.machine
        n0, a0 = len(machine.instructions), len(machine.allocations)
        body(*args)
        if len(machine.allocations) != a0:
            return None
        where: dict[int, int] = {}
        for i, a in enumerate(anchors):
            where.setdefault(a[0], i)
        out = []
        for ins in machine.instructions[n0:]:
            reads = [_spec(r, where, anchors) for r in ins.reads]
            writes = [_spec(r, where, anchors) for r in ins.writes]
            rs = tuple(sp for sp in reads if sp is not None)
            ws = tuple(sp for sp in writes if sp is not None)
            if len(rs) < len(reads) or len(ws) < len(writes) or (ins.opcode in _OPENS_GROUP and not ws):
                return None  # an operand outside the bindings
            out.append(([getattr(ins, f) for f in _FIELDS], rs, ws, len(rs) - (1 if ins.accumulate else 0)))
        return _Template(out, anchors)

    def _predict(self, tpl: _Template, anchors: tuple[Region, ...]) -> list[Instruction]:
        out = []
        for values, rs, ws, _ in tpl.ins:
            v = list(values)
            v[_READS] = tuple(_place(s, anchors) for s in rs)
            v[_WRITES] = tuple(_place(s, anchors) for s in ws)
            out.append(Instruction(*v))
        return out

    def _check(
        self, tpl: _Template, anchors: tuple[Region, ...], body: Callable[..., None], args: tuple[Any, ...]
    ) -> bool:
        """Run the body for real; whether it issued what the template predicts (counting as a verification
        when its bindings sit elsewhere than the recorded call's)."""
        machine, touched = self.machine, self.ctx.psum_touched
        predicted = self._predict(tpl, anchors)
        opens = {p.writes[0] for p in predicted if p.opcode in _OPENS_GROUP}
        n0, a0, t0 = len(machine.instructions), len(machine.allocations), len(touched)
        new = sum(1 for r in opens if r not in touched)
        body(*args)
        if len(machine.allocations) != a0 or machine.instructions[n0:] != predicted:
            return False
        if len(touched) != t0 + new or not opens <= touched:
            return False
        if anchors != tpl.anchors:
            tpl.verified += 1
        return True

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
