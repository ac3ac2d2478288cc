"""Ranks in one simulation: where they sit, per-rank values and timing, one trace with a process per core."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import trnsim.nki as tn
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import UsageError
from trnsim.hw.presets import get_spec
from trnsim.sim.instance import hbm_stacks, layout


@tn.jit
def scale_rows(x, y):
    """out = exp(x) * y, tile by tile (DMA, ScalarE, VectorE)."""
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    for i in nl.affine_range(x.shape[0] // 128):
        a = nl.ndarray((128, x.shape[1]), dtype=x.dtype, buffer=nl.sbuf)
        b = nl.ndarray((128, x.shape[1]), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=a, src=x[i * 128 : (i + 1) * 128, :])
        nisa.dma_copy(dst=b, src=y[i * 128 : (i + 1) * 128, :])
        nisa.activation(dst=a, op=nl.exp, data=a)
        nisa.tensor_tensor(dst=a, data1=a, data2=b, op=nl.multiply)
        nisa.dma_copy(dst=out[i * 128 : (i + 1) * 128, :], src=a)
    return out


def test_ranks_are_numbered_like_the_runtime_numbers_neuron_cores() -> None:
    spec = get_spec("trn2")
    lay = layout(spec, 6, lnc=2)  # 4 logical cores per chip at LNC=2 -> 2 chips, the 16-chip instance
    assert lay.instance is not None and lay.instance.name == "trn2.48xlarge"
    assert [(p.chip, p.cores) for p in lay.ranks] == [
        (0, (0, 1)),
        (0, (2, 3)),
        (0, (4, 5)),
        (0, (6, 7)),
        (1, (0, 1)),
        (1, (2, 3)),
    ]
    assert hbm_stacks(spec) == 4 and lay.cores_per_stack == 2
    one = layout(spec, 8, lnc=1)
    assert one.instance is None and [one.domain_of(r) for r in range(4)] == [(0, 0), (0, 0), (0, 1), (0, 1)]
    assert layout(spec, 2, lnc=1, first_rank=5).ranks[0].cores == (5,)


def test_layout_errors_say_what_is_allowed() -> None:
    with pytest.raises(UsageError, match="LNC must be 1 or 2"):
        layout(get_spec("trn2"), 2, lnc=4)
    with pytest.raises(UsageError, match="no LNC=2"):
        layout(get_spec("trn1"), 2, lnc=2)
    with pytest.raises(UsageError, match="largest instance has 16"):
        layout(get_spec("trn1"), 40, lnc=1)
    with pytest.raises(UsageError, match=r"trn2\.48xlarge has 16"):
        layout(get_spec("trn2"), 100, lnc=2, instance="trn2.48xlarge")


@pytest.mark.parametrize("target,lnc", [("trn2", 2), ("trn2", 1), ("trn1", 1)])
def test_each_rank_computes_its_own_inputs_like_a_one_core_launch(target: str, lnc: int) -> None:
    rng = np.random.default_rng()
    args = [tuple(rng.standard_normal((256, 64)).astype(np.float32) for _ in range(2)) for _ in range(3)]
    prof = tn.run_ranks(scale_rows, args, target=target, lnc=lnc)
    single = tn.profile(scale_rows, target=target, cores=1)(*args[0])
    domains = [prof.layout.domain_of(r) for r in range(3)]
    for r, ((x, y), out, p) in enumerate(zip(args, prof.outputs, prof.ranks)):
        np.testing.assert_allclose(out, np.exp(x) * y, rtol=1e-5)
        # no collectives: a rank alone on its HBM stack runs exactly as a one-core launch; one that shares
        # the stack with another rank (trn2 at LNC=1: ranks 0 and 1) can only be slower
        if domains.count(domains[r]) == 1:
            assert p.latency_us == pytest.approx(single.latency_us)
        else:
            assert p.latency_us >= single.latency_us


def test_spmd_grid_spreads_over_the_cores_of_an_lnc2_rank() -> None:
    @tn.jit
    def k(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        i = nl.program_id(0)
        t = nl.ndarray((128, x.shape[1]), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[i * 128 : (i + 1) * 128, :])
        nisa.activation(dst=t, op=nl.exp, data=t)
        nisa.dma_copy(dst=out[i * 128 : (i + 1) * 128, :], src=t)
        return out

    xs = [np.random.default_rng().standard_normal((256, 32)).astype(np.float32) for _ in range(2)]
    prof = tn.run_ranks(k[nl.nc(2)], [(x,) for x in xs], target="trn2", lnc=2)
    for x, out, p in zip(xs, prof.outputs, prof.ranks):
        np.testing.assert_allclose(out, np.exp(x), rtol=1e-5)
        assert {ins.core for ins in p.instructions} == {0, 1}
    with pytest.raises(UsageError, match="LNC=1 has 1"):
        tn.run_ranks(k[nl.nc(2)], [(x,) for x in xs], target="trn2", lnc=1)


def test_one_trace_with_a_process_per_rank_core(tmp_path: Path) -> None:
    rng = np.random.default_rng()
    args = [tuple(rng.standard_normal((128, 64)).astype(np.float32) for _ in range(2)) for _ in range(3)]
    prof = tn.run_ranks(scale_rows, args, target="trn2", lnc=1)
    doc = json.loads(prof.to_perfetto(tmp_path / "ranks.json").read_text())
    names = {e["pid"]: e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "process_name"}
    for r in range(3):
        assert f"rank {r} · NeuronCore 0" in names.values()
    slices = [e for e in doc["traceEvents"] if e.get("ph") == "X"]
    by_pid = {pid: sum(1 for e in slices if e["pid"] == pid) for pid in names}
    per_rank = len(prof.ranks[0].timeline.slice_instr)
    assert sorted(v for v in by_pid.values() if v) == [per_rank] * 3
    assert doc["metadata"]["latency_us"] == pytest.approx(prof.latency_us)
    assert prof.to_dict()["placement"][2] == {"rank": 2, "chip": 0, "cores": [2]}


def test_wrong_number_of_rank_arguments_is_a_user_error() -> None:
    with pytest.raises(UsageError, match="at least one rank"):
        tn.run_ranks(scale_rows, [], target="trn2")
