"""Builders of the random number instructions: rng, rand2, dropout, set_rng_seed, rand_set_state and
rand_get_state. Draws come from the engine's XORWOW state (nki/rng_state.py) in functional runs, so the
same seed gives the same bits; timing runs issue the same instructions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.isa.instruction import Instruction
from trnsim.isa.instructions import dropout as dropout_rec
from trnsim.isa.instructions import rand2 as rand2_rec
from trnsim.isa.instructions import rand_get_state as get_state_rec
from trnsim.isa.instructions import rand_set_state as set_state_rec
from trnsim.isa.instructions import set_rng_seed as seed_rec
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.nki import rng_state
from trnsim.nki.context import current, user_location
from trnsim.nki.issue import issue
from trnsim.nki.operands import (
    check_tile,
    read_stored,
    require_tensor,
    resolve_operand,
    same_shape_tiles,
    vector_operand,
)


def rng(dst: Any, engine: Engine | None = None, location: str | None = None) -> Instruction:
    """dst = 32 random bits per element, truncated to dst's integer dtype (its least significant bits)."""
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "rng dst", loc)
    check_tile(ctx, dst, "rng dst", loc)
    eng = engine if engine is not None else Engine.VECTOR  # the record's default engine

    def bits() -> np.ndarray:
        # the low bits of each 32-bit draw: a wrapping cast keeps them (two's complement for signed dtypes)
        return rng_state.next_bits(ctx, eng, dst.partition_size(), dst.free_size()).astype(dst.dtype)

    return issue(Opcode.RNG, dst, {}, None, loc, engine=engine, compute=bits, label="rng({engine})")


def rand2(dst: Any, low: Any, high: Any, location: str | None = None) -> Instruction:
    """dst = uniform values in [low, high] (scalars or [P, 1] tiles), VectorE, NC-v4+."""
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "rand2 dst", loc)
    check_tile(ctx, dst, "rand2 dst", loc)
    p = dst.partition_size()
    lo, lo_tiles = vector_operand(ctx, low, p, "rand2 min", loc)
    hi, hi_tiles = vector_operand(ctx, high, p, "rand2 max", loc)
    inputs = {f"bound{i}": t for i, t in enumerate([*lo_tiles, *hi_tiles])}
    known = {"low_value": lo, "high_value": hi} if not lo_tiles and not hi_tiles else {}

    def values() -> np.ndarray:
        bits = rng_state.next_bits(ctx, Engine.VECTOR, p, dst.free_size())
        a = np.asarray(resolve_operand(lo, ctx, loc), np.float32).reshape(-1, 1)
        b = np.asarray(resolve_operand(hi, ctx, loc), np.float32).reshape(-1, 1)
        return rand2_rec.semantics(bits, a, b)

    return issue(Opcode.RAND2, dst, inputs, None, loc, params=known, compute=values, label="rand2")


def dropout(dst: Any, data: Any, prob: Any, location: str | None = None) -> Instruction:
    """dst = data with each element zeroed with probability prob (scalar or [P, 1] tile), not rescaled."""
    ctx = current()
    loc = location or user_location()
    dst, data = same_shape_tiles(ctx, "dropout", loc, dst=dst, data=data)
    p = data.partition_size()
    pv, p_tiles = vector_operand(ctx, prob, p, "dropout prob", loc)
    inputs = {"data": data, **({"prob": p_tiles[0]} if p_tiles else {})}

    def values() -> np.ndarray:
        bits = rng_state.next_bits(ctx, Engine.VECTOR, p, data.free_size())
        pr = np.asarray(resolve_operand(pv, ctx, loc), np.float32).reshape(-1)
        pr = np.broadcast_to(pr, (p,)) if pr.size == 1 else pr
        x = read_stored(ctx, data, None, loc).reshape(p, -1)
        return dropout_rec.semantics(x, pr, bits)

    params = {} if p_tiles else {"prob_value": pv}
    return issue(Opcode.DROPOUT, dst, inputs, None, loc, params=params, compute=values, label="dropout")


def set_rng_seed(src_seeds: Any, location: str | None = None) -> Instruction:
    """Seed VectorE's generators from a [1, 1] 32-bit tile."""
    ctx = current()
    loc = location or user_location()
    src = require_tensor(src_seeds, "set_rng_seed src_seeds", loc)
    ins = issue(Opcode.SET_RNG_SEED, src, {"src_seeds": src}, None, loc, label="set_rng_seed")
    ins.writes = ()  # it reads the seed tile and writes only the engine's state
    if ctx.machine.functional:
        seed = read_stored(ctx, src, None, loc)
        rng_state.put(ctx, Engine.VECTOR, seed_rec.semantics(seed, rng_state.lanes(ctx)))
    return ins


def rand_set_state(src_seeds: Any, engine: Engine | None = None, location: str | None = None) -> Instruction:
    """Load the engine's per-lane XORWOW states from a uint32 [P, 6] (GpSimd) or [P, 24] (VectorE) tile."""
    ctx = current()
    loc = location or user_location()
    src = require_tensor(src_seeds, "rand_set_state src_seeds", loc)
    ins = issue(Opcode.RAND_SET_STATE, src, {"src_seeds": src}, None, loc, engine=engine, label="rand_set_state")
    ins.writes = ()
    if ctx.machine.functional:
        words = read_stored(ctx, src, None, loc).reshape(src.partition_size(), -1)
        rng_state.put(ctx, ins.engine, set_state_rec.semantics(words))
    return ins


def rand_get_state(dst: Any, engine: Engine | None = None, location: str | None = None) -> Instruction:
    """dst = the engine's per-lane XORWOW states (uint32 [P, 6] on GpSimd, [P, 24] on VectorE)."""
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "rand_get_state dst", loc)
    eng = engine if engine is not None else Engine.GPSIMD
    return issue(
        Opcode.RAND_GET_STATE,
        dst,
        {},
        None,
        loc,
        engine=engine,
        compute=lambda: get_state_rec.semantics(rng_state.get(ctx, eng)[: dst.partition_size()]),
        label="rand_get_state({engine})",
    )
