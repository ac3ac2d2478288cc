"""The MoE router kernels (topk, sort, histogram, cumsum) against torch / numpy on fresh random data: ragged
row tiles, several PSUM chunks, ties, descending order, integer and float keys, and their errors."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

import trnsim.nki as nki
from trnsim.errors import ShapeMismatchError
from trnsim.kernels import cumsum, histogram, sort, sort_ranks_bounded, topk
from trnsim.nki import TensorSpec


@pytest.mark.parametrize("shape, k", [((200, 12), 3), ((7, 256), 8), ((130, 5), 5)])
@pytest.mark.parametrize("largest", [True, False])
def test_topk_matches_torch(rng: np.random.Generator, shape: tuple[int, int], k: int, largest: bool) -> None:
    x = rng.standard_normal(shape).astype(np.float32)
    values, indices = nki.simulate(topk)(x, k, largest=largest)
    ref_v, ref_i = torch.topk(torch.from_numpy(x), k, largest=largest)
    assert indices.dtype == np.int32 and values.shape == (shape[0], k)
    np.testing.assert_array_equal(values, ref_v.numpy())
    np.testing.assert_array_equal(indices, ref_i.numpy())  # distinct random values: one right answer


def test_topk_bf16_router_probabilities(rng: np.random.Generator) -> None:
    probs = torch.softmax(torch.from_numpy(rng.standard_normal((64, 16)).astype(np.float32)), -1)
    x = probs.numpy().astype(ml_dtypes.bfloat16)
    values, indices = nki.simulate(topk)(x, 2)
    assert values.dtype == x.dtype
    xf = x.astype(np.float32)
    picked = np.take_along_axis(xf, indices.astype(np.int64), axis=1)
    np.testing.assert_array_equal(picked, values.astype(np.float32))  # the indices point at the values
    np.testing.assert_array_equal(values.astype(np.float32), -np.sort(-xf, axis=1)[:, :2])  # ties allowed


@pytest.mark.parametrize("size", [1, 48, 300, 1100])
def test_sort_of_expert_ids_is_torchs_stable_sort(rng: np.random.Generator, size: int) -> None:
    ids = rng.integers(0, 7, size).astype(np.int32)  # many ties: stability decides the positions
    values, positions = nki.simulate(sort)(ids)
    ref_v, ref_p = torch.sort(torch.from_numpy(ids), stable=True)
    np.testing.assert_array_equal(values, ref_v.numpy())
    np.testing.assert_array_equal(positions, ref_p.numpy())
    assert values.dtype == np.int32 and positions.dtype == np.int32


@pytest.mark.parametrize("size, bound", [(48, 4), (300, 7), (1000, 128)])
def test_counting_ranks_are_the_stable_sort_permutation(rng: np.random.Generator, size: int, bound: int) -> None:
    ids = rng.integers(0, bound, size).astype(np.int32)
    ranks = nki.simulate(sort_ranks_bounded)(ids, bound)
    _, order = torch.sort(torch.from_numpy(ids), stable=True)
    expected = np.empty(size, np.int64)
    expected[order.numpy()] = np.arange(size)  # slot order[r] goes to position r
    np.testing.assert_array_equal(ranks, expected)


def test_counting_ranks_cost_grows_linearly_not_quadratically() -> None:
    def latency(size: int) -> float:
        return nki.profile(sort_ranks_bounded, mode="timing")(TensorSpec((size,), np.dtype(np.int32)), 64).latency_us

    assert latency(8192) < 6 * latency(2048)  # 4x the slots: about 4x the work (a rank-compare sort: 16x)


def test_sort_descending_floats(rng: np.random.Generator) -> None:
    x = rng.standard_normal(700).astype(np.float32)
    x[::5] = x[0]  # ties among floats too
    values, positions = nki.simulate(sort)(x, descending=True)
    ref_v, ref_p = torch.sort(torch.from_numpy(x), descending=True, stable=True)
    np.testing.assert_array_equal(values, ref_v.numpy())
    np.testing.assert_array_equal(positions, ref_p.numpy())


@pytest.mark.parametrize("bins, lo, hi", [(8, 0, 7), (13, -1.5, 2.0), (1, -3.0, 3.0)])
def test_histogram_matches_torch_histc(rng: np.random.Generator, bins: int, lo: float, hi: float) -> None:
    x = (rng.standard_normal(333) * 2).astype(np.float32)
    x[:40] = rng.integers(0, 8, 40)  # exact edges and the upper bound itself
    x[40] = hi
    counts = nki.simulate(histogram)(x, bins, lo, hi)
    np.testing.assert_array_equal(counts, torch.histc(torch.from_numpy(x), bins, lo, hi).numpy())


def test_histogram_of_int32_ids_counts_in_int32(rng: np.random.Generator) -> None:
    ids = rng.integers(0, 6, 257).astype(np.int32)
    counts = nki.simulate(histogram)(ids, 6, 0, 5, out_dtype=np.int32)
    assert counts.dtype == np.int32
    np.testing.assert_array_equal(counts, np.bincount(ids, minlength=6))


@pytest.mark.parametrize("shape", [(9,), (300,), (130, 40)])
def test_cumsum_matches_numpy(rng: np.random.Generator, shape: tuple[int, ...]) -> None:
    x = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(nki.simulate(cumsum)(x), np.cumsum(x, axis=-1), rtol=1e-5, atol=1e-5)


def test_cumsum_of_counts_to_int32_offsets(rng: np.random.Generator) -> None:
    counts = rng.integers(0, 50, 64).astype(np.float32)
    offsets = nki.simulate(cumsum)(counts, np.int32)
    assert offsets.dtype == np.int32
    np.testing.assert_array_equal(offsets, np.cumsum(counts).astype(np.int32))


def test_router_errors_name_the_problem() -> None:
    x = np.zeros((4, 6), np.float32)
    with pytest.raises(ShapeMismatchError, match=r"k must be in 1\.\.6"):
        nki.simulate(topk)(x, 7)
    with pytest.raises(ShapeMismatchError, match="vector"):
        nki.simulate(sort)(x)
    with pytest.raises(ShapeMismatchError, match="lo < hi"):
        nki.simulate(histogram)(np.zeros(5, np.float32), 4, 1.0, 1.0)


def test_router_costs_in_timing_mode_grow_with_the_work() -> None:
    # shapes only: a timing run needs no values and more slots cost more
    short = nki.profile(sort, mode="timing")(TensorSpec((512,), np.dtype(np.int32)))
    long = nki.profile(sort, mode="timing")(TensorSpec((2048,), np.dtype(np.int32)))
    assert 0 < short.latency_us < long.latency_us
    k1 = nki.profile(topk, mode="timing")(TensorSpec((256, 64), np.dtype(np.float32)), 1)
    k8 = nki.profile(topk, mode="timing")(TensorSpec((256, 64), np.dtype(np.float32)), 8)
    assert 0 < k1.latency_us < k8.latency_us
