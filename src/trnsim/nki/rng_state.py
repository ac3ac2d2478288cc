"""The engines' random number generator states, per trace context (one core's program) and engine.

Each compute lane of VectorE and GpSimd keeps XORWOW state (isa/instructions/rng.py). A program starts
from the state a seed of 0 gives (the hardware's power-on state is not published; a fixed start keeps
unseeded runs reproducible), and set_rng_seed / rand_set_state replace it. Values exist in functional
runs only; timing runs issue the same instructions without them.
"""

from __future__ import annotations

import weakref

import numpy as np

from trnsim.isa.instructions.rng import draw, generators_per_lane, seeded_state
from trnsim.isa.opcodes import Engine
from trnsim.nki.context import TraceContext

_STATES: dict[tuple[int, Engine], np.ndarray] = {}  # (id(trace context), engine) -> [lanes, generators, 6]
_WATCHED: set[int] = set()


def _forget(ctx_id: int) -> None:
    _WATCHED.discard(ctx_id)
    for key in [k for k in _STATES if k[0] == ctx_id]:
        del _STATES[key]


def lanes(ctx: TraceContext) -> int:
    return int(ctx.machine.spec.core.sbuf.partitions)


def get(ctx: TraceContext, engine: Engine) -> np.ndarray:
    state = _STATES.get((id(ctx), engine))
    if state is None:
        state = seeded_state(0, lanes(ctx), generators_per_lane(engine))
    return state


def put(ctx: TraceContext, engine: Engine, state: np.ndarray, first_lane: int = 0) -> None:
    """Replace lanes first_lane.. of the engine's state (rand_set_state may seed fewer than all lanes)."""
    if id(ctx) not in _WATCHED:
        _WATCHED.add(id(ctx))
        weakref.finalize(ctx, _forget, id(ctx))
    full = get(ctx, engine).copy()
    full[first_lane : first_lane + state.shape[0]] = state
    _STATES[(id(ctx), engine)] = full


def next_bits(ctx: TraceContext, engine: Engine, partitions: int, n: int, first_lane: int = 0) -> np.ndarray:
    """`n` draws for each of `partitions` lanes from first_lane (uint32 [partitions, n]); advances them."""
    state = get(ctx, engine)
    bits, new = draw(state[first_lane : first_lane + partitions], n)
    put(ctx, engine, new, first_lane)
    return bits
