"""rng: 32 random bits per element from the engine's XORWOW generators, truncated to dst's integer dtype
(VectorE; GpSimd from NC-v3). The generator and its per-lane state are shared by the RNG family
(rand2, dropout, set_rng_seed, rand_set_state, rand_get_state).

NKI docs (nki.isa.rng, rand2, rand_set_state): the engines use XORWOW (Marsaglia 2003); a compute lane's
state is 6 uint32 words on GpSimd and 24 on VectorE. trnsim reads VectorE's 24 words as 4 XORWOW
generators per lane, used round-robin along the free axis (assumption: the docs give the size, not the
layout). Seeding one 32-bit value (set_rng_seed) initialises each generator as cuRAND's
curand_init(seed | generator_id << 32) does, so every lane draws a different, reproducible stream.
"""

from __future__ import annotations

import numpy as np

from trnsim.errors import DtypeError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, streaming
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import require_buffer

STATE_WORDS = 6  # x, y, z, w, v (the xorshift words) and d (the Weyl counter)
WORDS_PER_LANE = {Engine.GPSIMD: 6, Engine.VECTOR: 24}  # NKI docs, rand_set_state "Tile size"
INTEGER_DTYPES = ("int8", "int16", "int32", "uint8", "uint16", "uint32")
_WEYL = np.uint32(362437)


def generators_per_lane(engine: Engine) -> int:
    return WORDS_PER_LANE[engine] // STATE_WORDS


def seeded_state(seed: int, lanes: int, generators: int) -> np.ndarray:
    """[lanes, generators, 6] XORWOW states, generator i of the core seeded as curand_init(seed | i << 32)."""
    ids = np.arange(lanes * generators, dtype=np.uint64).reshape(lanes, generators)
    with np.errstate(over="ignore"):
        t0 = np.full(ids.shape, (seed & 0xFFFFFFFF) ^ 0xAAD26B49, np.uint32) * np.uint32(1099087573)
        t1 = (ids.astype(np.uint32) ^ np.uint32(0xF7DCEFDD)) * np.uint32(2591861531)
        words = (
            np.uint32(123456789) + t0,
            np.uint32(362436069) ^ t0,
            np.uint32(521288629) + t1,
            np.uint32(88675123) ^ t1,
            np.uint32(5783321) + t0,
            np.uint32(6615241) + t1 + t0,
        )
    return np.stack(words, axis=-1).astype(np.uint32)


def draw(state: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` 32-bit draws per lane from `state` [lanes, generators, 6]: element j of a lane comes from
    generator j % generators at its step j // generators. Returns (bits [lanes, n] uint32, the new state)."""
    lanes, gens, _ = state.shape
    x, y, z, w, v, d = (state[..., i].copy() for i in range(STATE_WORDS))
    steps = -(-n // gens)
    out = np.empty((steps, lanes, gens), np.uint32)
    with np.errstate(over="ignore"):
        for s in range(steps):  # XORWOW (Marsaglia 2003), as cuRAND's curand(): all generators at once
            t = x ^ (x >> np.uint32(2))
            x, y, z, w = y, z, w, v
            v = (v ^ (v << np.uint32(4))) ^ (t ^ (t << np.uint32(1)))
            d = d + _WEYL
            out[s] = v + d
    bits = out.transpose(1, 0, 2).reshape(lanes, steps * gens)[:, :n]
    return bits, np.stack((x, y, z, w, v, d), axis=-1)


def semantics(state: np.ndarray, n: int) -> np.ndarray:
    """The random bits (uint32) an rng call writes; the builder truncates them to dst's dtype."""
    return draw(state, n)[0]


def require_engine_generation(call: Call, what: str, gpsimd_from: int, vector_from: int = 2) -> None:
    """The RNG family's engines by NeuronCore generation (NKI docs "Supported engines")."""
    first = gpsimd_from if call.engine is Engine.GPSIMD else vector_from
    if call.core.nc_version < first:
        raise UsageError(
            f"{what} on the {call.engine.key} engine needs NeuronCore-v{first} or newer; this target is "
            f"NeuronCore-v{call.core.nc_version}",
            call.location,
            rule="nc-version",
        )


def check(call: Call) -> None:
    dst = call.dst
    assert dst is not None
    require_engine_generation(call, "rng", gpsimd_from=3)
    require_buffer(dst, "rng dst", call.location, allow_psum=call.engine is not Engine.GPSIMD)
    if dst.dtype.name not in INTEGER_DTYPES:
        raise DtypeError(
            f"rng writes random bits into an integer tile ({', '.join(INTEGER_DTYPES)}), got {dst} {dst.dtype.name}",
            call.location,
            rule="dtype",
        )


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """No published cost: one element written per cycle like memset/iota, so max(MIN_II, N) on VectorE and
    GPSIMD_START + N on GpSimd (the engines' documented streaming rules)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, n))


RECORD = InstructionRecord(
    opcode=Opcode.RNG,
    engines=(Engine.VECTOR, Engine.GPSIMD),
    cycles=cycles,
    semantics=semantics,
    check=check,
    source="NKI docs nki.isa.rng (XORWOW: nki.isa.rand2); cost: engine streaming rule (trainium.md §3.6-3.7)",
)
