"""core_barrier on an SBUF tile, as nki-library's moe_cte (bwmm_shard_on_I) writes it: the barrier moves no
data, so trnsim takes it (with a warning that the docs ask for shared HBM); PSUM is refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import trnsim.nki as tn
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import UsageError


@tn.jit
def counter_then_barrier(x, buffer, engine=nisa.engine.gpsimd):
    """Each core bumps an on-chip counter, both meet at a barrier on it, then each stores x + counter."""
    core = nl.program_id(0)
    count = nl.ndarray((1, 1), dtype=nl.float32, buffer=buffer)
    nisa.memset(count, value=1.0)
    nisa.tensor_scalar(dst=count, data=count, op0=nl.add, operand0=2.0)
    nisa.core_barrier(count, (0, 1), engine=engine)
    t = nl.ndarray((1, x.shape[1]), dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=x[core : core + 1, :])
    nisa.tensor_scalar(dst=t, data=t, op0=nl.add, operand0=count)
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out[core : core + 1, :], src=t)
    return out


def _run(x: np.ndarray, buffer: Any, engine: Any = nisa.engine.gpsimd) -> Any:
    return tn.run_ranks(counter_then_barrier[nl.nc(2)], [(x, buffer, engine)], target="trn2", lnc=2)


def test_barrier_on_an_sbuf_tile_runs_and_warns(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, int(rng.integers(1, 64)))).astype(np.float32)
    prof = _run(x, nl.sbuf)
    np.testing.assert_allclose(prof.outputs[0], x + 3.0, rtol=1e-6)
    ins = prof.ranks[0].instructions
    assert sorted(i.core for i in ins if i.opcode.key == "core_barrier") == [0, 1]
    assert any("core_barrier" in w and "shared HBM" in w for w in prof.ranks[0].warnings)


def test_barrier_on_psum_is_refused(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 8)).astype(np.float32)
    with pytest.raises(UsageError, match="core_barrier data must be shared HBM"):
        _run(x, nl.psum, nisa.engine.vector)  # GpSimd, the default engine, cannot reach PSUM at all
