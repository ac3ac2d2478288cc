"""Tenants on one instance: whole NeuronCores each, memory kept apart by the machine, neighbours on one HBM
stack competing for its bandwidth."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st

import trnsim.nki as tn
import trnsim.nki.collectives as ncc
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import IsolationError, UsageError
from trnsim.hw.presets import get_spec
from trnsim.sim.tenancy import parse_cores

INSTANCE = "trn2.48xlarge"
LEAK: dict[str, Any] = {}  # where one tenant's kernel leaves handles to its tensors for another to misuse


def run(tenants: list[tn.TenantLaunch], mode: str = "functional", lnc: int = 1) -> dict[str, Any]:
    return tn.run_tenants(tenants, target="trn2", lnc=lnc, instance=INSTANCE, mode=mode)


def arg(x: np.ndarray, mode: str) -> Any:
    return x if mode == "functional" else tn.TensorSpec(x.shape, x.dtype)


@tn.jit
def victim(x):
    """Tenant A: exp(x), leaving handles to its input, SBUF tile and output where B can find them."""
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=x)
    nisa.activation(dst=t, op=nl.exp, data=t)
    nisa.dma_copy(dst=out, src=t)
    LEAK.update(hbm_in=x, sbuf=t, hbm_out=out)
    return out


def attack_read_hbm(x: Any, mine: Any) -> None:
    nisa.dma_copy(dst=mine, src=LEAK["hbm_in"])


def attack_write_hbm(x: Any, mine: Any) -> None:
    nisa.dma_copy(dst=LEAK["hbm_out"], src=mine)


def attack_read_sbuf(x: Any, mine: Any) -> None:
    nisa.tensor_copy(dst=mine, src=LEAK["sbuf"])


def attack_write_sbuf(x: Any, mine: Any) -> None:
    nisa.activation(dst=LEAK["sbuf"], op=nl.exp, data=mine)


def attack_sbuf_to_sbuf_dma(x: Any, mine: Any) -> None:
    nisa.dma_copy(dst=LEAK["sbuf"], src=mine)


def attack_load(x: Any, mine: Any) -> None:
    mine[...] = nl.load(LEAK["hbm_in"])


def attack_store(x: Any, mine: Any) -> None:
    nl.store(LEAK["hbm_out"], value=mine)


def attack_as_an_operand(x: Any, mine: Any) -> None:
    nisa.tensor_tensor(dst=mine, data1=mine, data2=LEAK["sbuf"], op=nl.add)


ATTACKS: dict[str, Callable[[Any, Any], None]] = {
    f.__name__: f
    for f in (
        attack_read_hbm,
        attack_write_hbm,
        attack_read_sbuf,
        attack_write_sbuf,
        attack_sbuf_to_sbuf_dma,
        attack_load,
        attack_store,
        attack_as_an_operand,
    )
}


def intruder(attack: str) -> Any:
    @tn.jit
    def kernel(x):
        mine = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=mine, src=x)
        ATTACKS[attack](x, mine)
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=mine)
        return out

    return kernel


def fuzz_settings(examples: int) -> Callable[[Any], Any]:
    """A fixed slice of examples per run; TRNSIM_FUZZ_SEED / TRNSIM_FUZZ_SCALE as in tests/fuzz."""
    chosen = os.environ.get("TRNSIM_FUZZ_SEED")
    scale = float(os.environ.get("TRNSIM_FUZZ_SCALE", "1"))

    def wrap(test: Any) -> Any:
        configured = settings(
            max_examples=max(1, int(examples * scale)), derandomize=chosen is None, deadline=None, database=None
        )(test)
        return seed(int(chosen))(configured) if chosen is not None else configured

    return wrap


@fuzz_settings(16)
@given(
    attack=st.sampled_from(sorted(ATTACKS)),
    mode=st.sampled_from(["functional", "timing"]),
    shape=st.tuples(st.integers(1, 128), st.integers(1, 64)),
    dtype=st.sampled_from([np.float32, np.float16]),
    cores=st.sampled_from([("0", "1"), ("0-1", "2-5"), ("3", "0-2")]),
)
def test_a_tenant_touching_anothers_memory_is_refused(
    attack: str, mode: str, shape: tuple[int, int], dtype: Any, cores: tuple[str, str]
) -> None:
    rng = np.random.default_rng()
    a_cores, b_cores = cores
    n_a, n_b = parse_cores(a_cores).count, parse_cores(b_cores).count
    xa = [rng.standard_normal(shape).astype(dtype) for _ in range(n_a)]
    xb = [rng.standard_normal(shape).astype(dtype) for _ in range(n_b)]
    before = [x.copy() for x in xa]
    tenants = [
        tn.TenantLaunch("alice", victim, a_cores, [(arg(x, mode),) for x in xa]),
        tn.TenantLaunch("bob", intruder(attack), b_cores, [(arg(x, mode),) for x in xb]),
    ]
    with pytest.raises(IsolationError, match=r"tenant 'bob'.*tenant 'alice'") as info:
        run(tenants, mode)
    assert info.value.rule == "isolation" and "test_tenancy.py" in (info.value.location or "")
    for x, b in zip(xa, before):  # the victim's inputs are untouched
        np.testing.assert_array_equal(x, b)


def test_each_tenant_computes_alone_when_nobody_misbehaves() -> None:
    rng = np.random.default_rng()
    xa = [rng.standard_normal((32, 16)).astype(np.float32) for _ in range(2)]
    xb = [rng.standard_normal((32, 16)).astype(np.float32) for _ in range(3)]
    out = run(
        [
            tn.TenantLaunch("a", victim, "0-1", [(x,) for x in xa]),
            tn.TenantLaunch("b", victim, "4-6", [(x,) for x in xb]),
        ]
    )
    for x, o in zip(xa, out["a"].outputs):
        np.testing.assert_allclose(o, np.exp(x), rtol=1e-6)
    for x, o in zip(xb, out["b"].outputs):
        np.testing.assert_allclose(o, np.exp(x), rtol=1e-6)
    assert [p.cores for p in out["b"].layout.ranks] == [(4,), (5,), (6,)]


def test_a_collective_or_sendrecv_reaching_another_tenants_core_is_refused() -> None:
    @tn.jit
    def reach(x, group):
        s = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        d = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=s, src=x)
        ncc.all_reduce([s], [d], group, nl.add)
        return d

    @tn.jit
    def neighbour(x):
        t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        r = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        nisa.sendrecv(src=t, dst=r, send_to_rank=1, recv_from_rank=1, pipe_id=0)
        return x

    x = np.ones((4, 4), np.float32)
    group = ncc.ReplicaGroup([[0, 1, 2]])  # alice has ranks 0-1; her rank 2 would be bob's core 2
    with pytest.raises(IsolationError, match=r"tenant 'alice'.*NeuronCore 2.*tenant 'bob'"):
        run([tn.TenantLaunch("alice", reach, "0-1", [(x, group)] * 2), tn.TenantLaunch("bob", victim, "2", [(x,)])])
    # at LNC=1 on trn2, cores 0 and 1 share an HBM stack: alice's sendrecv would reach bob's core
    with pytest.raises(IsolationError, match=r"tenant 'alice'.*tenant 'bob'"):
        run([tn.TenantLaunch("alice", neighbour, "0", [(x,)]), tn.TenantLaunch("bob", victim, "1", [(x,)])])


def test_partitions_must_be_whole_cores_that_fit_and_do_not_overlap() -> None:
    x = np.ones((4, 4), np.float32)
    with pytest.raises(UsageError, match="both ask for NeuronCore 3"):
        run([tn.TenantLaunch("a", victim, "0-3", [(x,)] * 4), tn.TenantLaunch("b", victim, "3", [(x,)])])
    with pytest.raises(UsageError, match="instance has 64 at LNC=2"):
        run([tn.TenantLaunch("a", victim, "60-64", [(x,)] * 5)], lnc=2)
    with pytest.raises(UsageError, match="built for LNC=1 but the instance runs at LNC=2"):
        run([tn.TenantLaunch("a", victim, "0", [(x,)], lnc=1)], lnc=2)
    with pytest.raises(UsageError, match="'N' or 'A-B'"):
        parse_cores("0,1")
    with pytest.raises(UsageError, match="arguments for 1 rank"):
        run([tn.TenantLaunch("a", victim, "0-1", [(x,)])])
    with pytest.raises(UsageError, match="distinct non-empty names"):
        tn.run_tenants([tn.TenantLaunch("a", victim, "0", [(x,)]), tn.TenantLaunch("a", victim, "1", [(x,)])])


@tn.jit
def stream(x):
    """HBM-bound: read x tile by tile into SBUF (64 KiB per partition per tile, near the DMA peak)."""
    out = nl.ndarray((128, x.shape[1]), dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray((128, x.shape[1]), dtype=x.dtype, buffer=nl.sbuf)
    for i in nl.affine_range(x.shape[0] // 128):
        t = nl.ndarray((128, x.shape[1]), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[i * 128 : (i + 1) * 128, :])
    nisa.dma_copy(dst=out, src=t)
    return out


def test_neighbours_on_one_hbm_stack_interfere_and_others_do_not() -> None:
    """trn2, LNC=1: cores 0 and 1 share HBM stack 0 (725 GB/s = 2.9 TB/s / 4); two cores streaming at
    16 queues x 23 B/ns each want 736 GB/s, so together they run slower; cores 0 and 2 do not share."""
    x = tn.TensorSpec((128 * 8, 16384), "float32")
    alone = run([tn.TenantLaunch("a", stream, "0", [(x,)])], "timing")["a"].latency_us
    shared = run([tn.TenantLaunch("a", stream, "0", [(x,)]), tn.TenantLaunch("b", stream, "1", [(x,)])], "timing")
    apart = run([tn.TenantLaunch("a", stream, "0", [(x,)]), tn.TenantLaunch("b", stream, "2", [(x,)])], "timing")
    assert apart["a"].latency_us == pytest.approx(alone) and apart["b"].latency_us == pytest.approx(alone)
    for name in ("a", "b"):
        assert shared[name].latency_us > alone * 1.005
    # and the demand over the stack's share bounds the slowdown: at most 736/725 - 1 plus the fixed costs
    assert max(shared[n].latency_us for n in "ab") < alone * 1.05


@tn.jit
def reduce_all(x, group):
    s = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    d = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=s, src=x)
    ncc.all_reduce([s], [d], group, nl.add)
    return d


def collective_ns(prof: Any) -> float:
    """How long rank 0's all-reduce held its engine (all ranks arrive together here)."""
    p = prof.ranks[0]
    (i,) = [k for k, ins in enumerate(p.instructions) if ins.opcode.key == "collective"]
    m = p.timeline.slice_instr == i
    return float(p.timeline.slice_end[m].max() - p.timeline.slice_start[m].min())


def test_tenants_whose_collectives_cross_the_same_chip_share_its_links() -> None:
    """trn2 at LNC=2 (4 NeuronCores per chip): 'a' = cores 2-5 spans chips 0-1, 'b' = 6-9 spans chips 1-2, so
    their all-reduces share chip 1's links and each gets half their bandwidth; 'c' = 10-13 (chips 2-3) shares
    no chip with 'a'. Closed form: 2 ranks per chip through HBM, then a ring of 2 chips."""
    spec = get_spec("trn2")
    inst = spec.instance(INSTANCE)
    x = tn.TensorSpec((128, 2048), "float32")
    b = 128 * 2048 * 4
    g = ncc.ReplicaGroup([[0, 1, 2, 3]])

    def launch(name: str, cores: str) -> tn.TenantLaunch:
        return tn.TenantLaunch(name, reduce_all, cores, [(x, g)] * 4)

    alone = run([launch("a", "2-5")], "timing", lnc=2)["a"]
    shared = run([launch("a", "2-5"), launch("b", "6-9")], "timing", lnc=2)
    apart = run([launch("a", "2-5"), launch("c", "10-13")], "timing", lnc=2)
    sync = spec.core.sync.min_ii_cycles / spec.core.sync.clock_ghz
    fixed = sync + 2 * (1 / 2) * 2 * b / spec.chip.hbm_bytes_per_ns + 2 * 1 * inst.hop_latency_ns
    wire = 2 * (1 / 2) * b / inst.link_bytes_per_ns
    assert collective_ns(alone) == pytest.approx(fixed + wire, rel=1e-9)
    assert collective_ns(apart["a"]) == pytest.approx(fixed + wire, rel=1e-9)
    assert collective_ns(apart["c"]) == pytest.approx(fixed + wire, rel=1e-9)
    for name in ("a", "b"):
        assert collective_ns(shared[name]) == pytest.approx(fixed + 2 * wire, rel=1e-9)
