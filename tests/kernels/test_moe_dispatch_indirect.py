"""Token dispatch / combine by indirect DMA (kernels/moe_dispatch.py): gathers and scatters of random routings
against numpy, the DMA stream it makes (one DMA per 128 rows plus the index loads), and its time against the
DMA roofline of the presets and against the row-run path it replaces."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

import trnsim.nki as nki
from trnsim.errors import ShapeMismatchError
from trnsim.hw.presets import get_spec
from trnsim.isa import Opcode
from trnsim.kernels import gather_rows, scatter_rows
from trnsim.nki import TensorSpec

DTYPES = [np.float32, ml_dtypes.bfloat16, ml_dtypes.float8_e4m3, np.int32]


def _table(rng: np.random.Generator, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    return (rng.standard_normal(shape) * 8).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_of_a_random_routing_matches_numpy(rng: np.random.Generator, dtype: type) -> None:
    vocab, width = int(rng.integers(2, 400)), int(rng.integers(1, 300))
    n = int(rng.choice([1, 127, 128, 129, int(rng.integers(130, 1200))]))
    table = _table(rng, (vocab, width), dtype)
    ids = rng.integers(0, vocab, n).astype(np.int32)  # repeats: a token routed to the same rows twice
    np.testing.assert_array_equal(nki.simulate(gather_rows)(table, ids), table[ids])
    np.testing.assert_array_equal(nki.simulate(gather_rows)(table[:, 0].copy(), ids), table[ids, 0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_scatter_of_a_permutation_matches_numpy(rng: np.random.Generator, dtype: type) -> None:
    n, width = int(rng.integers(1, 900)), int(rng.integers(1, 200))
    perm = rng.permutation(n).astype(np.int32)  # the inverse of a sort: every row written once
    values = _table(rng, (n, width), dtype)
    want = np.empty_like(values)
    want[perm] = values
    base = _table(rng, (n, width), dtype)
    np.testing.assert_array_equal(nki.simulate(scatter_rows)(base, perm, values), want)


def test_scatter_to_some_rows_keeps_the_others(rng: np.random.Generator) -> None:
    rows, n, width = 500, 300, int(rng.integers(1, 100))
    positions = rng.permutation(rows)[:n].astype(np.int32)
    base, values = _table(rng, (rows, width), np.float32), _table(rng, (n, width), np.float32)
    want = base.copy()
    want[positions] = values
    np.testing.assert_array_equal(nki.simulate(scatter_rows)(base, positions, values), want)


def test_scatter_to_repeated_positions_lets_the_last_write_win(rng: np.random.Generator) -> None:
    rows, n = 64, 400
    positions = rng.integers(0, rows, n).astype(np.int32)
    base, values = _table(rng, (rows, 16), np.float32), _table(rng, (n, 16), np.float32)
    want = base.copy()
    want[positions] = values  # numpy, like torch's index_put on CPU: the last write wins
    np.testing.assert_array_equal(nki.simulate(scatter_rows)(base, positions, values), want)


def _dmas(prof: object) -> list:
    return [i for i in prof.instructions if i.opcode is Opcode.DMA_COPY]  # type: ignore[attr-defined]


@pytest.mark.parametrize("n", [700, 4096, 128 * 600 + 5])
def test_one_dma_moves_128_rows_after_one_index_load_per_512_tiles(n: int) -> None:
    width = 96
    prof = nki.profile(gather_rows, target="trn2", mode="timing")(
        TensorSpec((1000, width), "bfloat16"), TensorSpec((n,), "int32")
    )
    dmas = _dmas(prof)
    full, left = divmod(n, 128)
    moves = [d for d in dmas if d.dma_row_bytes == width * 2]
    assert len(moves) == full + (left > 0)
    assert sorted({d.dma_rows for d in moves}) == sorted({128, *([left] if left else [])})
    assert len(dmas) - len(moves) == math.ceil(full / 512) + (left > 0)  # the index loads
    assert sum(d.dma_bytes for d in moves) == n * width * 2


def test_indices_known_to_be_runs_keep_the_run_path(rng: np.random.Generator) -> None:
    table = _table(rng, (600, 8), np.float32)
    ids = np.arange(100, 400, dtype=np.int32)  # one run of consecutive rows: a single DMA
    prof = nki.profile(gather_rows, target="trn2")(table, ids)
    assert len(_dmas(prof)) == 1
    np.testing.assert_array_equal(nki.simulate(gather_rows)(table, ids), table[ids])


@pytest.mark.parametrize("target", ["trn1", "trn2", "trn3"])
def test_dispatch_of_4096_tokens_of_width_7168_runs_near_the_dma_roofline(target: str) -> None:
    n, hidden = 4096, 7168
    table, ids = TensorSpec((n, hidden), "bfloat16"), TensorSpec((n,), "int32")
    indirect = nki.profile(gather_rows, target=target, mode="timing")(table, ids)
    per_row = nki.profile(gather_rows, target=target, mode="timing")(table, [n - 1 - i for i in range(n)])
    dma = get_spec(target).core.dma
    roofline_us = n * hidden * 2 / (dma.queues * dma.queue_bytes_per_ns) / 1000
    assert roofline_us <= indirect.latency_us <= 1.15 * roofline_us
    assert indirect.latency_us < per_row.latency_us
    combine = nki.profile(scatter_rows, target=target, mode="timing")(table, ids, table)
    assert combine.latency_us == pytest.approx(indirect.latency_us, rel=0.02)


def test_bad_indices_are_clear_errors(rng: np.random.Generator) -> None:
    table = _table(rng, (5, 3), np.float32)
    with pytest.raises(ShapeMismatchError, match=r"ids must be in 0\.\.4"):
        nki.simulate(gather_rows)(table, np.array([1, 5] * 100, np.int32))
    with pytest.raises(ShapeMismatchError, match="must be a vector"):
        nki.simulate(gather_rows)(table, np.zeros((4, 2), np.int32))
