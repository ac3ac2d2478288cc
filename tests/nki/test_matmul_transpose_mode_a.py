"""nc_matmul(is_transpose=True): the PE array's transpose mode (NKI docs, nki.isa.nc_matmul, Trainium2 guide).

NeuronCore-v3 on: a bit-accurate transpose through an identity moving tile (NaN/Inf stay in place), dst in
the input dtype, fp32 at half the plain fp32 matmul's cycles. NeuronCore-v2: an ordinary fp32 matmul.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import DtypeError, UsageError
from trnsim.isa.opcodes import Opcode


@nki.jit
def transpose_by_matmul(x, moving, psum_dtype=None, perf_mode=nisa.matmul_perf_mode.none):
    t = nl.load(x)
    mv = nl.load(moving)
    dt = psum_dtype if psum_dtype is not None else x.dtype
    ps = nl.ndarray((x.shape[1], moving.shape[1]), dtype=dt, buffer=nl.psum)
    nisa.nc_matmul(dst=ps, stationary=t, moving=mv, is_transpose=True, perf_mode=perf_mode)
    sb = nl.ndarray(ps.shape, dtype=dt, buffer=nl.sbuf)
    nisa.tensor_copy(dst=sb, src=ps)
    out = nl.ndarray(ps.shape, dtype=dt, buffer=nl.shared_hbm)
    nl.store(out, sb)
    return out


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint16 if a.dtype.itemsize == 2 else np.uint32)


@pytest.mark.parametrize("dtype", [nl.bfloat16, nl.float16, nl.float32])
@pytest.mark.parametrize("target", ["trn2", "trn3"])
def test_transpose_mode_is_bit_accurate(rng: np.random.Generator, dtype: Any, target: str) -> None:
    k, m = int(rng.integers(2, 129)), int(rng.integers(1, 129))
    x = rng.standard_normal((k, m)).astype(dtype)
    x[rng.integers(k), rng.integers(m)] = np.nan  # a plain matmul would spread these over whole columns
    x[rng.integers(k), rng.integers(m)] = -np.inf
    prof = nki.profile(transpose_by_matmul, target=target)(x, np.eye(k, dtype=dtype))
    assert prof.outputs.dtype == x.dtype
    np.testing.assert_array_equal(_bits(prof.outputs), _bits(np.ascontiguousarray(x.T)))


def test_transpose_mode_follows_the_moving_selection(rng: np.random.Generator) -> None:
    """A permutation (or a column of zeros) as moving: dst[m, n] = x[k, m] where moving[k, n] == 1."""
    k, m = 32, 24
    x = rng.standard_normal((k, m)).astype(nl.bfloat16)
    perm = rng.permutation(k)
    moving = np.eye(k, dtype=nl.bfloat16)[:, perm]
    moving[:, 5] = 0
    want = x.T[:, perm].copy()
    want[:, 5] = 0
    got = nki.simulate(transpose_by_matmul, target="trn2")(x, moving)
    np.testing.assert_array_equal(_bits(got), _bits(want))


def test_transpose_mode_costs(rng: np.random.Generator) -> None:
    """bf16: the matmul rule max(min(MIN_II, M), N); fp32: 4x that halved by transpose mode (trn2 only)."""
    k, m = 128, 96
    costs = {}
    for target in ("trn1", "trn2"):
        t = nki.get_target_spec(target).core.tensor
        for dt in (nl.bfloat16, nl.float32):
            x = rng.standard_normal((k, m)).astype(dt)
            psum_dt = nl.float32 if target == "trn1" else dt
            prof = nki.profile(transpose_by_matmul, target=target)(x, np.eye(k, dtype=dt), psum_dt)
            (mm,) = [i for i in prof.instructions if i.opcode is Opcode.NC_MATMUL]
            costs[target, np.dtype(dt).name] = mm.cycles
            base = max(min(t.min_ii_cycles, m), k)
            if dt == nl.float32:
                base *= t.fp32_cost_factor / (t.transpose_mode_fp32_speedup or 1.0)
            assert mm.cycles == base
    assert costs["trn2", "float32"] == costs["trn1", "float32"] / 2  # the Trainium2 guide's "2x speedup"


def test_neuroncore_v2_runs_an_ordinary_matmul(rng: np.random.Generator) -> None:
    """No transpose mode on NC-v2: dst must be fp32 and NaN propagates through the sums, as the docs warn."""
    k, m = 16, 8
    x = rng.standard_normal((k, m)).astype(nl.bfloat16)
    with pytest.raises(DtypeError, match="float32"):
        nki.simulate(transpose_by_matmul, target="trn1")(x, np.eye(k, dtype=nl.bfloat16))
    clean = nki.simulate(transpose_by_matmul, target="trn1")(x, np.eye(k, dtype=nl.bfloat16), nl.float32)
    np.testing.assert_array_equal(clean, x.T.astype(np.float32))
    x[3, 2] = np.nan
    got = nki.simulate(transpose_by_matmul, target="trn1")(x, np.eye(k, dtype=nl.bfloat16), nl.float32)
    assert np.isnan(got[2]).all()  # 0 * NaN = NaN lands in every column of the row


@pytest.mark.parametrize("mode", ["simulate", "profile"])
def test_transpose_mode_rules(rng: np.random.Generator, mode: str) -> None:
    run = nki.simulate if mode == "simulate" else nki.profile
    x = rng.standard_normal((32, 16)).astype(nl.bfloat16)
    eye = np.eye(32, dtype=nl.bfloat16)
    with pytest.raises(DtypeError, match="is_transpose=True writes the stationary dtype bfloat16"):
        run(transpose_by_matmul, target="trn2")(x, eye, nl.float32)
    x8 = x.astype(nl.float8_e4m3)
    with pytest.raises(UsageError, match="double_row"):
        run(transpose_by_matmul, target="trn2")(
            x8.reshape(16, 2, 16),
            eye.astype(nl.float8_e4m3)[:16].reshape(16, 2, 16),
            None,
            nisa.matmul_perf_mode.double_row,
        )


def test_transpose_mode_refuses_a_moving_tile_that_is_not_a_selection(rng: np.random.Generator) -> None:
    x = rng.standard_normal((32, 16)).astype(nl.bfloat16)
    moving = np.eye(32, dtype=nl.bfloat16) * 2
    with pytest.raises(UsageError, match="identity"):
        nki.simulate(transpose_by_matmul, target="trn2")(x, moving)
