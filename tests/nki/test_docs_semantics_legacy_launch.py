"""Legacy `nki.trace` kernels that store into their output arguments, run by `nki.simulate_kernel` (the NKI docs'
own tests do this): the caller's numpy arrays receive what the kernel wrote; inputs stay as they were."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki.language as nl
import trnsim.nki.legacy as legacy_nki
import trnsim.nki.legacy_isa as lisa
from trnsim.errors import UsageError


@legacy_nki.trace
def partition_sum_into(a_tensor, b_tensor):
    a = nl.load(a_tensor)
    nl.store(b_tensor, lisa.tensor_partition_reduce(np.add, a))


def test_simulate_kernel_writes_the_kernel_output_into_the_numpy_argument(rng: np.random.Generator) -> None:
    a = rng.standard_normal((128, 24)).astype(np.float32)
    a_before = a.copy()
    b = np.zeros((1, 24), dtype=np.float32)
    assert legacy_nki.simulate_kernel(partition_sum_into, a, b) is None
    np.testing.assert_allclose(b, a.sum(axis=0, keepdims=True), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(a, a_before)


@legacy_nki.trace
def scaled_copy_into(a_tensor, out=None, scale=2.0):
    nl.store(out, nl.multiply(nl.load(a_tensor), scale))


def test_simulate_kernel_writes_keyword_output_arguments(rng: np.random.Generator) -> None:
    a = rng.standard_normal((64, 32)).astype(np.float32)
    out = np.zeros_like(a)
    legacy_nki.simulate_kernel(scaled_copy_into, a, out=out, scale=3.0)
    np.testing.assert_allclose(out, a * 3.0, rtol=1e-6)


def test_simulate_kernel_reports_a_wrong_call_as_a_usage_error() -> None:
    with pytest.raises(UsageError, match="cannot be called"):
        legacy_nki.simulate_kernel(partition_sum_into, np.zeros((128, 4), np.float32))


def test_the_current_module_simulate_kernel_writes_back_too(rng: np.random.Generator) -> None:
    import trnsim.nki as nki

    a = rng.standard_normal((32, 16)).astype(np.float32)
    out = np.zeros_like(a)
    nki.simulate_kernel(scaled_copy_into, a, out)
    np.testing.assert_allclose(out, a * 2.0, rtol=1e-6)
