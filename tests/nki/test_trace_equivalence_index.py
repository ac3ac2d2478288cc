"""Indexing's one-pass path (nki/tensor_fast_index.py) gives the general path's key, shape and region, and the
general path's error where an index is out of bounds, on random views and random int/slice indices."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import trnsim.nki.language as nl
from trnsim.errors import TrnsimError
from trnsim.hw import load_preset
from trnsim.nki import fast_paths
from trnsim.nki.context import TraceContext, activate
from trnsim.sim.machine import Machine


def _random_entry(rng: np.random.Generator, n: int) -> Any:
    r = rng.random()
    if r < 0.3:
        return int(rng.integers(-n - 2, n + 2))  # sometimes out of bounds
    if r < 0.4:
        return slice(None)
    pick = [None, *range(-n - 1, n + 2)]

    def bound() -> Any:
        return pick[int(rng.integers(0, len(pick)))]

    return slice(bound(), bound(), [None, 1, 2, 3][int(rng.integers(0, 4))])


def _random_index(rng: np.random.Generator, shape: tuple[int, ...]) -> Any:
    k = int(rng.integers(1, len(shape) + 1))
    idx = tuple(_random_entry(rng, n) for n in shape[:k])
    return idx[0] if k == 1 and rng.random() < 0.5 else idx


def _outcome(t: Any, index: Any) -> Any:
    try:
        v = t[index]
    except TrnsimError as err:
        return type(err).__name__, err.bare_message
    return v.key, v.shape, v.region(), type(v).__name__


@pytest.mark.parametrize("buffer", ["sbuf", "hbm"])
def test_fast_index_matches_general_path(buffer: str) -> None:
    rng = np.random.default_rng()
    ctx = TraceContext(Machine(load_preset("trn2"), "timing", 1), core=0, program_id=(0,), grid=(1,), kernel_name="k")
    with activate(ctx):
        base = nl.ndarray((128, 6, 10, 7), nl.bfloat16, buffer=nl.sbuf if buffer == "sbuf" else nl.shared_hbm)
        views = [base, base[:, 1:5], base[3:100:3, 2, ::2], base[5, :, 3], base[:, :, 2:9:3, 1:]]
        for _ in range(400):
            t = views[int(rng.integers(0, len(views)))]
            index = _random_index(rng, t.shape)
            fast = _outcome(t, index)
            with fast_paths.disabled():
                full = _outcome(t, index)
            assert fast == full, (t, index)
