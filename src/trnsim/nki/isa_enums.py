"""Enums shared by the current and legacy `nki.isa` modules."""

from __future__ import annotations

import functools
from enum import Enum
from typing import Any

from trnsim.errors import UsageError
from trnsim.isa.opcodes import Engine
from trnsim.isa.semantics import iota as _iota
from trnsim.nki.context import maybe_current, user_location
from trnsim.nki.target import get_target_spec


class engine(Enum):
    unknown = 0
    tensor = 1
    scalar = 2
    gpsimd = 3
    dma = 4
    vector = 5
    sync = 6


tensor_engine = engine.tensor
vector_engine = engine.vector
scalar_engine = engine.scalar
gpsimd_engine = engine.gpsimd
dma_engine = engine.dma
unknown_engine = engine.unknown


class reduce_cmd(Enum):
    idle = 0
    reset = 1
    reduce = 2
    reset_reduce = 3
    load_reduce = 4


class dge_mode(Enum):
    unknown = 0
    swdge = 1
    hwdge = 2
    none = 3


class oob_mode(Enum):
    error = 0
    skip = 1


class matmul_perf_mode(Enum):
    none = 0
    double_row = 1


@functools.total_ordering
class nc_version(Enum):
    """NeuronCore generations, ordered (kernels test `nisa.get_nc_version() >= nisa.nc_version.gen3`)."""

    gen2 = 2
    gen3 = 3
    gen4 = 4

    def __lt__(self, other: Any) -> bool:
        if not isinstance(other, nc_version):
            return NotImplemented
        return self.value < other.value


_ENGINES = {
    engine.tensor: Engine.TENSOR,
    engine.vector: Engine.VECTOR,
    engine.scalar: Engine.SCALAR,
    engine.gpsimd: Engine.GPSIMD,
    engine.sync: Engine.SYNC,
    engine.dma: Engine.DMA,
}


def to_engine(e: Any) -> Engine | None:
    """An nki.isa engine (enum or int) as the simulator's Engine; unknown means 'let the compiler pick'."""
    if e is None or e is engine.unknown:
        return None
    if isinstance(e, Engine):
        return e
    if isinstance(e, int) and not isinstance(e, bool) and e in {x.value for x in engine}:
        e = engine(e)
    if e is engine.unknown:
        return None
    if isinstance(e, engine):
        return _ENGINES[e]
    names = ", ".join(f"nki.isa.engine.{x.name}" for x in engine)
    raise UsageError(f"unknown engine {e!r}; use one of {names}", user_location(), rule="engine")


def get_nc_version() -> nc_version:
    ctx = maybe_current()
    spec = ctx.machine.spec if ctx is not None else get_target_spec()
    return nc_version(spec.core.nc_version)


def pattern_values(shape: tuple[int, ...], pattern: Any, offset: int, channel_multiplier: int) -> Any:
    """offset + p * channel_multiplier + sum_k i_k * step_k over NKI's [[step, count], ...] pattern."""
    try:
        pat = [(int(s), int(n)) for s, n in pattern]
    except (TypeError, ValueError):
        raise UsageError(
            f"an access pattern is a list of [step, count] pairs such as [[1, 512]], got {pattern!r}", user_location()
        ) from None
    return _iota((shape[0], *[n for _, n in pat]), pat, int(offset), int(channel_multiplier))
