"""`nki.isa` wrappers: between the cores of one HBM stack (re-exported by nki/isa.py)."""

from __future__ import annotations

from typing import Any

from trnsim.nki import (
    emit_ranks,
)
from trnsim.nki.context import user_location
from trnsim.nki.isa_enums import (
    dma_engine,
    engine,
    to_engine,
)
from trnsim.nki.tensor import NkiTensor


# -- between the cores of one HBM stack (nki/emit_ranks.py; run on several cores with trnsim.nki.run_ranks) --
def sendrecv(
    src: NkiTensor,
    dst: NkiTensor,
    send_to_rank: int,
    recv_from_rank: int,
    pipe_id: int,
    dma_engine: Any = dma_engine,
    name: Any = None,
) -> None:
    mode = "gpsimd_dma" if "gpsimd" in str(getattr(dma_engine, "name", dma_engine)) else "dma"
    emit_ranks.sendrecv(src, dst, send_to_rank, recv_from_rank, pipe_id, mode, None, user_location())


def core_barrier(data: NkiTensor, cores: Any, engine: Any = engine.gpsimd, name: Any = None) -> None:
    emit_ranks.core_barrier(data, cores, to_engine(engine), user_location())
