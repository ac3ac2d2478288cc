"""An instruction call's legality and cost, decided once per signature of a trace.

A record's rules, cost, FLOPs and DMA transfer (isa/instructions/) are functions of the Call alone: the core,
the engine, each operand's shape, dtype, buffer, innermost stride and contiguous runs, the parameters and the
processed extent; the operand's `source` (the kernel's tensor) only names it in messages. A kernel issues the
same call shape thousands of times (every k-step of a GEMM), so issue() asks the record once per signature
and reuses the answer. Calls with a parameter that is not a plain value (an array, a tile, a callable) have
no signature and are always asked. Behind nki/fast_paths.py's switch.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from trnsim.isa.operand import Call, Operand
from trnsim.isa.record import InstructionRecord, Transfer

Facts = tuple[float, int, Transfer | None]  # engine cycles, FLOPs, what a DMA moves
_PLAIN = frozenset({int, float, str, bool, type(None)})


def _plain(v: Any) -> bool:
    t = type(v)
    if t in _PLAIN or isinstance(v, Enum):
        return True
    return t is tuple and all(type(x) in _PLAIN or isinstance(x, Enum) for x in v)


def _operand(o: Operand) -> tuple[Any, ...]:
    return (o.name, o.shape, o.dtype, o.buffer, o.innermost_stride_bytes, o.contiguous_run_bytes)


def signature(call: Call) -> tuple[Any, ...] | None:
    """What the record's answers depend on (the core is the trace's one core spec), or None."""
    params = []
    for k, v in call.params.items():
        if not _plain(v):
            return None
        params.append((k, type(v), v))  # the type too: 1, 1.0 and True are equal keys
    return (
        call.engine,
        None if call.dst is None else _operand(call.dst),
        tuple(_operand(o) for o in call.inputs.values()),
        tuple(_operand(o) for o in call.outputs.values()),
        tuple(params),
        call.partitions,
        call.elements,
    )


def ask(record: InstructionRecord, call: Call) -> Facts:
    """The record's cost, FLOPs and transfer for `call` (its rules already passed)."""
    cycles = record.cost(call)
    flops = record.flops(call) if record.flops is not None else 0
    return cycles, flops, record.transfer(call) if record.transfer is not None else None
