"""`nki.isa` wrappers of the random number instructions (re-exported by nki/isa.py)."""

from __future__ import annotations

from typing import Any

from trnsim.nki import emit_random
from trnsim.nki.isa_enums import engine, to_engine
from trnsim.nki.isa_instruction import NkiInstruction
from trnsim.nki.tensor import NkiTensor


def rng(dst: NkiTensor, engine: Any = engine.vector, name: Any = None) -> NkiInstruction:
    return NkiInstruction(emit_random.rng(dst, engine=to_engine(engine)))


def rand2(dst: NkiTensor, min: Any, max: Any, name: Any = None) -> NkiInstruction:
    return NkiInstruction(emit_random.rand2(dst, min, max))


def dropout(dst: NkiTensor, data: NkiTensor, prob: Any, name: Any = None) -> NkiInstruction:
    return NkiInstruction(emit_random.dropout(dst, data, prob))


def set_rng_seed(src_seeds: NkiTensor, name: Any = None) -> NkiInstruction:
    return NkiInstruction(emit_random.set_rng_seed(src_seeds))


def rand_set_state(src_seeds: NkiTensor, engine: Any = engine.gpsimd, name: Any = None) -> NkiInstruction:
    return NkiInstruction(emit_random.rand_set_state(src_seeds, engine=to_engine(engine)))


def rand_get_state(dst: NkiTensor, engine: Any = engine.gpsimd, name: Any = None) -> NkiInstruction:
    return NkiInstruction(emit_random.rand_get_state(dst, engine=to_engine(engine)))
