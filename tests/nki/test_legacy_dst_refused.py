"""Legacy `neuronxcc.nki.isa` instructions return a new tile; a `dst=` (the current API's form) is refused, not dropped.

Dropping it (the legacy functions take extra keywords for later releases' parameters) left the caller's tile
unwritten: a silent wrong answer.
"""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki
from trnsim.errors import UsageError

trnsim.nki.install_aliases()

import neuronxcc.nki as nki  # noqa: E402
import neuronxcc.nki.isa as nisa  # noqa: E402
import neuronxcc.nki.language as nl  # noqa: E402


@nki.jit
def scale_returned(x_in, factor):
    out = nl.ndarray(x_in.shape, dtype=x_in.dtype, buffer=nl.shared_hbm)
    x = nl.load(x_in)
    y = nisa.tensor_scalar(data=x, op0=np.multiply, operand0=factor)
    nl.store(out, value=y)
    return out


@nki.jit
def scale_into_dst(x_in, factor):
    out = nl.ndarray(x_in.shape, dtype=x_in.dtype, buffer=nl.shared_hbm)
    x = nl.load(x_in)
    y = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.tensor_scalar(data=x, op0=np.multiply, operand0=factor, dst=y)
    nl.store(out, value=y)
    return out


def test_legacy_tensor_scalar_returns_its_result():
    rng = np.random.default_rng()
    x = rng.standard_normal((128, 64)).astype(np.float32)
    factor = float(rng.uniform(0.5, 2.0))
    out = nki.simulate_kernel(scale_returned, x, factor)
    np.testing.assert_allclose(out, x * np.float32(factor), rtol=1e-6)


def test_legacy_dst_keyword_is_a_usage_error_naming_the_line():
    rng = np.random.default_rng()
    x = rng.standard_normal((128, 64)).astype(np.float32)
    with pytest.raises(UsageError, match=r"tensor_scalar\(dst=\.\.\.\).*no dst parameter") as info:
        nki.simulate_kernel(scale_into_dst, x, 2.0)
    assert "test_legacy_dst_refused.py" in str(info.value)
