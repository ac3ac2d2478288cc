"""The internal reduction registers of the Vector and Scalar engines (one fp32 value per partition lane).

NC-v4's exponential (VectorE) and activate2 (ScalarE) accumulate into them across instructions
(reduce_cmd=reduce) and read them out only when a call passes reduce_res, so their values live here,
per trace context (one core's program) and engine, in functional runs.
"""

from __future__ import annotations

import weakref

import numpy as np

from trnsim.errors import ShapeMismatchError
from trnsim.isa.opcodes import Engine
from trnsim.nki.context import TraceContext

_REGISTERS: dict[tuple[int, Engine], np.ndarray] = {}  # (id(trace context), engine) -> [P] fp32 values
_WATCHED: set[int] = set()


def _forget(ctx_id: int) -> None:
    _WATCHED.discard(ctx_id)
    for key in [k for k in _REGISTERS if k[0] == ctx_id]:
        del _REGISTERS[key]


def load(ctx: TraceContext, engine: Engine, p: int, what: str, loc: str) -> np.ndarray | None:
    """The engine's accumulator over `p` partitions, or None if nothing has set it in this program."""
    acc = _REGISTERS.get((id(ctx), engine))
    if acc is not None and acc.shape[0] != p:
        raise ShapeMismatchError(
            f"{what} continues a reduction over {p} partitions, but the {engine.key} engine's accumulator holds "
            f"{acc.shape[0]}",
            loc,
            rule="reduce",
        )
    return acc


def store(ctx: TraceContext, engine: Engine, values: np.ndarray) -> None:
    if id(ctx) not in _WATCHED:
        _WATCHED.add(id(ctx))
        weakref.finalize(ctx, _forget, id(ctx))
    _REGISTERS[(id(ctx), engine)] = np.asarray(values, dtype=np.float32).reshape(-1)
