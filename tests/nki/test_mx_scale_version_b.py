"""quantize_mx's block scale by NKI release: NKI 0.5.0 made it two times larger than the OCP MX sample rule
(Neuron 2.31 release notes); kernels declared for an earlier release (set_api_version) get the OCP rule,
X = 2^(floor(log2 max|v|) - E_max). Checked against the OCP rule computed from fp32 exponent bits (as the
OCP spec's sample algorithm and nki-library's goldens do) on random data; the current release stays the default."""

from __future__ import annotations

from collections.abc import Iterator

import ml_dtypes
import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.nki import versions

E_MAX = {"float8_e4m3fn_x4": 8, "float8_e5m2_x4": 15}
ELEMENT = {"float8_e4m3fn_x4": ml_dtypes.float8_e4m3fn, "float8_e5m2_x4": ml_dtypes.float8_e5m2}


@pytest.fixture
def declared() -> Iterator[None]:
    yield
    versions.set_api_version(versions.CURRENT)


@nki.jit
def quantize(x, packed):
    t = nl.load(x)
    q = nl.ndarray((x.shape[0], x.shape[1] // 4), dtype=packed, buffer=nl.sbuf)
    s = nl.ndarray((x.shape[0] // 8, x.shape[1] // 4), dtype=nl.uint8, buffer=nl.sbuf)
    nisa.quantize_mx(q, t, s)
    out_q = nl.ndarray(q.shape, dtype=nl.uint32, buffer=nl.shared_hbm)
    out_s = nl.ndarray(s.shape, dtype=nl.uint8, buffer=nl.shared_hbm)
    nl.store(out_q, q.view(nl.uint32))
    nl.store(out_s, s)
    return out_q, out_s


def ocp_reference(x: np.ndarray, packed: str) -> tuple[np.ndarray, np.ndarray]:
    """OCP MX v1.0 sample conversion: shared exponent = the group's largest fp32 exponent - E_max (biased e8m0,
    0 for an all-zero group), elements = clip(v / 2^(shared - 127)) rounded to the element type."""
    p, f = x.shape
    v = x.astype(np.float32)
    exp_bits = ((v.view(np.uint32) >> 23) & 0xFF).astype(np.int64)
    shared = np.clip(exp_bits.reshape(p // 8, 8, f // 4, 4).max(axis=(1, 3)) - E_MAX[packed], 0, 254)
    block = np.repeat(np.repeat(2.0 ** (shared - 127.0), 8, axis=0), 4, axis=1)
    limit = float(ml_dtypes.finfo(ELEMENT[packed]).max)
    return shared, np.clip(v.astype(np.float64) / block, -limit, limit).astype(ELEMENT[packed]).astype(np.float64)


@pytest.mark.parametrize("packed", ["float8_e4m3fn_x4", "float8_e5m2_x4"])
@pytest.mark.parametrize("version", ["0.3", "0.4"])
def test_kernels_declared_before_0_5_get_the_ocp_scale(
    rng: np.random.Generator, declared: None, packed: str, version: str
) -> None:
    p, f = 32 * int(rng.integers(1, 5)), 4 * int(rng.integers(1, 100))
    x = (rng.standard_normal((p, f)) * 2.0 ** rng.integers(-6, 7, size=(p, 1))).astype(ml_dtypes.bfloat16)
    x[8:16, 4:8] = 0  # an all-zero group
    versions.set_api_version(version)
    q, s = nki.simulate(quantize, target="trn3")(x, dtypes.resolve(packed))
    want_scale, want_values = ocp_reference(x, packed)
    np.testing.assert_array_equal(np.asarray(s).astype(np.int64), want_scale)
    got = dtypes.unpack_x4(np.asarray(q, dtype=np.uint32), dtypes.resolve(packed)).astype(np.float64)
    np.testing.assert_array_equal(got, want_values)


@pytest.mark.parametrize("packed", ["float8_e4m3fn_x4", "float8_e5m2_x4"])
def test_the_current_release_wins_by_default_one_exponent_above_ocp(rng: np.random.Generator, packed: str) -> None:
    p, f = 32, 4 * int(rng.integers(1, 100))
    x = (rng.standard_normal((p, f)) * 4.0).astype(ml_dtypes.bfloat16)  # no all-zero group
    _, s = nki.simulate(quantize, target="trn3")(x, dtypes.resolve(packed))
    want_scale, _ = ocp_reference(x, packed)
    np.testing.assert_array_equal(np.asarray(s).astype(np.int64), want_scale + 1)  # "two times larger"
