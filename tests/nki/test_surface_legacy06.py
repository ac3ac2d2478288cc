"""The same instructions as kernels written for legacy `neuronxcc.nki` call them (functional forms that return
a new tile, as the NKI docs' examples for dropout, tensor_partition_reduce, local_gather, nl.gather_flattened
and nl.random_seed do), checked against numpy."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.language as nl
import trnsim.nki.legacy_isa as lisa
from trnsim.errors import UsageError


@nki.jit
def legacy_dropout(a_tensor, b_tensor):
    c_tensor = nl.ndarray(a_tensor.shape, dtype=a_tensor.dtype, buffer=nl.shared_hbm)
    a = nl.load(a_tensor)
    b = nl.load(b_tensor) if b_tensor is not None else 0.2
    c = lisa.dropout(a, prob=b)
    nl.store(c_tensor, c)
    return c_tensor


def test_legacy_dropout_with_a_tile_and_a_scalar_rate(rng: np.random.Generator) -> None:
    a = (rng.random((128, 512)) * 100 + 1).astype(np.float32)
    b = rng.random((128, 1)).astype(np.float32)
    for prob, expected in ((b, b[:, 0]), (None, np.full(128, 0.2))):
        c = nki.simulate(legacy_dropout)(a, prob)
        kept = c != 0
        np.testing.assert_array_equal(c[kept], a[kept])
        assert np.all(np.abs((1 - kept.mean(axis=1)) - expected) < 6 * np.sqrt(0.25 / 512))


@nki.jit
def legacy_partition_reduce(a_tensor):
    b_tensor = nl.ndarray((1, *a_tensor.shape[1:]), dtype=a_tensor.dtype, buffer=nl.shared_hbm)
    a = nl.load(a_tensor)
    b = lisa.tensor_partition_reduce(np.add, a)
    nl.store(b_tensor, b)
    return b_tensor


def test_legacy_partition_reduce(rng: np.random.Generator) -> None:
    a = (rng.random((128, 32, 4)) * 100).astype(np.float32)
    np.testing.assert_allclose(nki.simulate(legacy_partition_reduce)(a), a.sum(axis=0, keepdims=True), rtol=1e-5)


@nki.jit
def legacy_local_gather(src_buffer, index, num_elem_per_idx, num_valid_indices):
    src = nl.load(src_buffer)
    idx = nl.load(index)
    out_tile = lisa.local_gather(src, idx, num_elem_per_idx, num_valid_indices)
    output = nl.ndarray(out_tile.shape, dtype=src_buffer.dtype, buffer=nl.shared_hbm)
    nl.store(output, out_tile)
    return output


def test_legacy_local_gather_returns_the_docs_example_shape(rng: np.random.Generator) -> None:
    src = (rng.random((128, 512, 4)) * 100).astype(np.float32)
    per_core = rng.integers(0, 512, size=(16, 4)).astype(np.uint16)
    index = np.tile(per_core, (8, 1))
    got = nki.simulate(legacy_local_gather)(src, index * 4, 4, None)
    assert got.shape == (128, 4, 16, 4)
    cols = per_core.flatten(order="F")
    np.testing.assert_array_equal(got.reshape(128, 64, 4), src[:, cols, :])
    fewer = nki.simulate(legacy_local_gather)(src, index * 4, 4, 10)
    np.testing.assert_array_equal(fewer, src[:, cols[:10], :])


@nki.jit
def seeded_gather(seed):
    nl.random_seed(seed)
    data = nl.rand((32, 64))  # legacy default dtype float32
    indices = nl.zeros((32, 10), dtype=nl.uint32)
    for i in nl.static_range(32):
        for j in nl.static_range(10):
            indices[i, j] = j * 5
    result = nl.gather_flattened(data=data, indices=indices)
    data_out = nl.ndarray((32, 64), dtype=nl.float32, buffer=nl.shared_hbm)
    result_out = nl.ndarray((32, 10), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(data_out, data)
    nl.store(result_out, result)
    return data_out, result_out


def test_legacy_int_seed_rand_and_gather_flattened() -> None:
    data, result = nki.simulate(seeded_gather)(42)
    again, _ = nki.simulate(seeded_gather)(42)
    np.testing.assert_array_equal(data, again)
    np.testing.assert_array_equal(result, np.take_along_axis(data, np.tile(np.arange(10) * 5, (32, 1)), axis=-1))
    assert not np.array_equal(data, nki.simulate(seeded_gather)(43)[0])
    with pytest.raises(UsageError, match=r"an int in 0\.\.16777216"):
        nki.simulate(seeded_gather)(2**30)


def test_legacy_mask_is_refused_clearly() -> None:
    @nki.jit
    def masked(x):
        t = nl.load(x)
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        nl.store(out, lisa.dropout(t, 0.5, mask=nl.arange(4)[:, None] < 2))
        return out

    with pytest.raises(UsageError, match="mask= is not supported") as info:
        nki.simulate(masked)(np.ones((4, 4), np.float32))
    assert "test_surface_legacy06.py" in str(info.value)
