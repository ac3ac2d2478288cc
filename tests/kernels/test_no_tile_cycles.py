"""Library kernels leave no tile in a reference cycle. A tile's SBUF/PSUM bytes are freed when its last
reference goes; a tile held by a cycle is freed only when Python's cyclic GC happens to run, so SBUF offsets,
the reuse dependencies they make, and the timeline would depend on the process (and the allocator's
collect-before-CapacityError fallback would hide it). Flash attention's DMA-transpose pairs had such a cycle."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import trnsim.nki as nki
from trnsim.kernels.attention import flash_attention
from trnsim.kernels.elementwise import fused_chain
from trnsim.kernels.matmul import matmul
from trnsim.nki import TensorSpec
from trnsim.nki.tensor import NkiTensor


@pytest.fixture
def saved_garbage() -> Iterator[list[Any]]:
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()


def _chain(x, y):
    return fused_chain(x, [("add", y), ("gelu", None)])


CASES = {
    # trn2 causal flash attention at this size plans a share of DMA transposes (paired units)
    "flash_attention_trn2": (flash_attention, "trn2", [(1, 4, 1024, 128), (1, 2, 1024, 128), (1, 2, 1024, 128)]),
    "flash_attention_trn1": (flash_attention, "trn1", [(1, 2, 640, 64), (1, 1, 640, 64), (1, 1, 640, 64)]),
    "matmul": (matmul, "trn2", [(640, 1024), (1024, 768)]),
    "fused_chain": (_chain, "trn1", [(300, 2048), (300, 2048)]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_tile_is_left_in_a_reference_cycle(case: str, saved_garbage: list[Any]) -> None:
    kernel, target, shapes = CASES[case]
    prof = nki.profile(kernel, target=target, mode="timing")(*[TensorSpec(s, "bfloat16") for s in shapes])
    assert np.isfinite(prof.latency_us) and prof.latency_us > 0
    gc.collect()
    cyclic_tiles = [o for o in saved_garbage if isinstance(o, NkiTensor)]
    assert not cyclic_tiles, f"{len(cyclic_tiles)} tiles freed only by the cyclic GC, e.g. {cyclic_tiles[0]!r}"
