"""The group-limited router's select kernels (gather / scatter along the last dim, where) against torch."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

import trnsim.nki as nki
from trnsim.errors import ShapeMismatchError
from trnsim.kernels import gather_last, scatter_last, where


def _indices(rng: np.random.Generator, rows: int, cols: int, k: int) -> np.ndarray:
    return np.stack([rng.permutation(cols)[:k] for _ in range(rows)]).astype(np.int32)


@pytest.mark.parametrize("rows, cols, k", [(200, 16, 3), (5, 256, 8)])
def test_gather_last_matches_torch_gather(rng: np.random.Generator, rows: int, cols: int, k: int) -> None:
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    idx = _indices(rng, rows, cols, k)
    x[0, idx[0, 0]] = -np.inf  # masked scores are picked exactly too
    ref = torch.gather(torch.from_numpy(x), 1, torch.from_numpy(idx).long()).numpy()
    np.testing.assert_array_equal(nki.simulate(gather_last)(x, idx), ref)


def test_scatter_last_matches_torch_scatter(rng: np.random.Generator) -> None:
    x = rng.standard_normal((130, 8)).astype(ml_dtypes.bfloat16)
    idx = _indices(rng, 130, 8, 4)
    out = nki.simulate(scatter_last)(x, idx, 1.0)
    ref = torch.from_numpy(x.astype(np.float32)).scatter(1, torch.from_numpy(idx).long(), 1.0).numpy()
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out.astype(np.float32), ref)


def test_where_with_tensor_and_number_branches(rng: np.random.Generator) -> None:
    cond = (rng.random((150, 24)) > 0.5).astype(np.float32)
    a, b = rng.standard_normal((2, 150, 24)).astype(np.float32)
    np.testing.assert_array_equal(nki.simulate(where)(cond, a, b), np.where(cond > 0, a, b))
    np.testing.assert_array_equal(nki.simulate(where)(cond, a, -np.inf), np.where(cond > 0, a, -np.inf))
    np.testing.assert_array_equal(nki.simulate(where)(cond, 0.0, b), np.where(cond > 0, 0.0, b))


def test_select_errors_name_the_problem() -> None:
    x = np.zeros((4, 6), np.float32)
    with pytest.raises(ShapeMismatchError, match=r"idx must be \[4, k\]"):
        nki.simulate(gather_last)(x, np.zeros((3, 2), np.int32))
    with pytest.raises(ShapeMismatchError, match="operands must all be"):
        nki.simulate(where)(x, np.zeros((4, 5), np.float32), 0.0)
