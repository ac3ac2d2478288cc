"""The one path every instruction takes from the kernel language into the machine.

A builder (emit_*.py) turns a kernel's arguments into tiles, ALU op names and a mask; `issue` then
describes the tiles to the instruction's record (isa/instructions/), lets the record pick the engine,
check its rules (in functional and timing-only runs alike) and cost the call, records the instruction,
and in functional runs computes its values with the record's numpy semantics.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from math import prod
from typing import Any

import numpy as np

from trnsim.isa.instruction import Instruction, Region
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.registry import RECORDS
from trnsim.nki import fast_paths, replay_recorder, spill
from trnsim.nki.block_banks import track
from trnsim.nki.call_facts import ask, signature
from trnsim.nki.context import current
from trnsim.nki.operands import describe, masked_extent, read_f32, write
from trnsim.nki.tensor import NkiTensor
from trnsim.sim.memory import MemoryKind

Values = Callable[[Call], Mapping[str, Any]]  # the semantics' keyword arguments, read for one call


def issue(
    op: Opcode,
    dst: NkiTensor,
    inputs: Mapping[str, NkiTensor],
    values: Values | None,
    location: str,
    *,
    params: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
    mask: np.ndarray | None = None,
    src_mask: np.ndarray | None = None,
    extent: tuple[int, int] | None = None,
    outputs: Mapping[str, NkiTensor] | None = None,
    accumulate: bool = False,
    label: str = "",
    compute: Callable[[], np.ndarray] | None = None,
) -> Instruction:
    """Issue `op` writing `dst` (under `mask`) from the tiles `inputs` (read under `src_mask`, else `mask`
    where shapes agree). In functional runs the record's semantics gets `values()` as keyword arguments
    (`compute` replaces that where the values come from elsewhere, e.g. an index expression).
    A "{engine}" in `label` becomes the engine the call runs on.

    `extent` is (partitions, elements per partition) processed, by default `mask`'s over dst;
    `outputs` are tiles written besides dst; `accumulate` adds into dst (PSUM accumulation).
    """
    ctx = current()
    machine = ctx.machine
    spiller = spill.get(machine)  # the compiler-spill model, when on: refill spilled operands first
    if spiller is not None:
        spiller.before_issue([dst, *inputs.values(), *(outputs or {}).values()], location)
    record = RECORDS[op]
    par = params or {}
    outs = outputs or {}
    dma = record.transfer is not None
    d_op = describe(dst, "dst", dma)
    in_ops = {k: describe(t, k, dma) for k, t in inputs.items()}
    eng = record.choose_engine(engine, [d_op, *in_ops.values()], par, location)
    count = dst.size if mask is None else int(mask.sum())
    if extent is not None:
        p, n = extent
    elif mask is None:  # masked_extent's answer without a mask, without its numpy product
        shape = dst.shape
        p, n = (shape[0] if shape else 1), (prod(shape[1:]) if len(shape) > 1 else 1)
    else:
        p, n = masked_extent(mask, dst.shape)
    call = Call(
        core=machine.spec.core,
        engine=eng,
        dst=d_op,
        inputs=in_ops,
        outputs={k: describe(t, k) for k, t in outs.items()},
        params={**par, "count": count, "masked": mask is not None},
        partitions=p,
        elements=n,
        location=location,
    )
    # legality and cost once per call signature of this trace (call_facts.py)
    sig = (op, signature(call)) if fast_paths.enabled() else None
    facts = machine.call_facts.get(sig) if sig is not None and sig[1] is not None else None
    if facts is None:
        record.check(call)

    smask = mask if src_mask is None else src_mask

    def for_src(t: NkiTensor) -> np.ndarray | None:
        return smask if smask is not None and t.shape == smask.shape else None

    srcs = list(inputs.values())
    dst.check_bounds(mask, location)
    for t in srcs:
        t.check_bounds(for_src(t), location)
        ctx.fresh.pop(t.alloc.id, None)
    buffers = {dst.buffer, *(t.buffer for t in srcs)}
    reads: tuple[Region, ...] = tuple(t.region(for_src(t)) for t in srcs)
    if accumulate:
        reads = (*reads, dst.region(mask))
    if facts is None:
        facts = ask(record, call)
        if sig is not None and sig[1] is not None:
            machine.call_facts[sig] = facts
    cycles, flops, moved = facts
    ins = Instruction(
        opcode=op,
        engine=eng,
        core=ctx.core,
        reads=reads,
        writes=(dst.region(mask), *(t.region() for t in outs.values())),
        cycles=cycles,
        flops=flops,
        touches_psum=MemoryKind.PSUM in buffers,
        touches_sbuf=MemoryKind.SBUF in buffers,
        accumulate=accumulate,
        location=location,
        label=sys.intern(label.replace("{engine}", eng.key)) if label else op.key,
    )
    if moved is not None:
        ins.dma_bytes, ins.dma_rows, ins.dma_row_bytes, ins.hbm_bytes = (
            moved.nbytes,
            moved.rows,
            moved.row_bytes,
            moved.hbm_bytes,
        )
    track([*srcs, dst] if accumulate else srcs, [dst, *outs.values()], location)
    if spiller is not None:
        spiller.after_track(ins)
    machine.emit(ins)
    if machine.functional and (compute is not None or values is not None):
        if (rec := replay_recorder.RECORDING) is not None:  # compiler/kernel_replay.py records this run
            rec.inside += 1
        result = compute() if compute is not None else record.semantics(**values(call))  # type: ignore[misc]
        if accumulate:
            result = read_f32(ctx, dst, mask, location) + np.asarray(result).reshape(dst.shape)
        write(dst, result, mask)
        if rec is not None:
            rec.step(ctx, record.semantics, values, compute, call, dst, mask, accumulate, location)
    return ins
