"""Collective timing against closed-form ring / torus / switch costs written out here from the presets.

The bandwidth-optimal algorithms (Patarasuk & Yuan; NCCL's ring analysis): a ring of p members moving B
bytes takes f (p-1)/p B / bw + f (p-1) hops (f = 2 for all-reduce, 1 for all-gather-like); a 2D torus runs
the ring along x, then along y on 1/x of the data; a switch reaches everyone in one hop; ranks of one chip
exchange through its HBM (each byte read and written). A collective instruction occupies the Sync engine
for its issue (MIN_II) plus that time, and every rank's instruction ends when the last rank arrived plus it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import trnsim.nki as tn
from trnsim.hw.presets import get_spec

tn.install_aliases()
import nki.collectives as ncc  # noqa: E402
import nki.isa as nisa  # noqa: E402
import nki.language as nl  # noqa: E402
from nki.collectives import ReplicaGroup  # noqa: E402

import nki  # noqa: E402

F = 512  # free elements per partition of the fp32 payload: B = 128 * 512 * 4 = 256 KiB per rank


def ring(nbytes: float, p: int, bw: float, hop: float, f: float) -> float:
    return 0.0 if p <= 1 else f * (p - 1) / p * nbytes / bw + f * (p - 1) * hop


def through_hbm(nbytes: float, r: int, hbm: float, f: float) -> float:
    return 0.0 if r <= 1 else f * (r - 1) / r * 2 * nbytes / hbm


def issue_ns(target: str) -> float:
    s = get_spec(target).core.sync
    return s.min_ii_cycles / s.clock_ghz


@nki.jit
def collective_kernel(x, kind, group, n, extra_work):
    src = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=src, src=x)
    if extra_work:  # this rank arrives late
        t = nl.ndarray((128, F), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        for _ in range(extra_work):
            nisa.activation(dst=t, op=nl.exp, data=t)
        nisa.dma_copy(dst=src, src=t)
    rows = {"all_gather": x.shape[0] * n, "reduce_scatter": x.shape[0] // n}.get(kind, x.shape[0])
    dst = nl.ndarray((rows, x.shape[1]), dtype=x.dtype, buffer=nl.shared_hbm)
    if kind == "all_reduce":
        ncc.all_reduce([src], [dst], group, nl.add)
    elif kind == "all_gather":
        ncc.all_gather([src], [dst], group, 0)
    elif kind == "reduce_scatter":
        ncc.reduce_scatter([src], [dst], group, 0, nl.add)
    elif kind == "all_to_all":
        ncc.all_to_all([src], [dst], group, 0)
    else:
        ncc.collective_permute([src], [dst], group)
    return dst


def collective_spans(
    target: str, lnc: int, n: int, kind: str, group: Any = None, late: int = 0
) -> list[tuple[float, float]]:
    """(start, end) ns of each rank's collective instruction on its Sync engine (timing mode)."""
    g = group if group is not None else ReplicaGroup([list(range(n))])
    args = [(tn.TensorSpec((128, F)), kind, g, n, late if r == 0 else 0) for r in range(n)]
    prof = tn.run_ranks(collective_kernel, args, target=target, lnc=lnc, mode="timing")
    spans = []
    for p in prof.ranks:
        (i,) = [k for k, ins in enumerate(p.instructions) if ins.opcode.key == "collective"]
        tl = p.timeline
        m = tl.slice_instr == i
        spans.append((float(tl.slice_start[m].min()), float(tl.slice_end[m].max())))
    return spans


B = 128 * F * 4


@pytest.mark.parametrize("kind,f", [("all_reduce", 2.0), ("reduce_scatter", 1.0), ("all_to_all", 1.0)])
def test_trn2_16_ranks_on_four_chips_of_the_torus(kind: str, f: float) -> None:
    """LNC=2: 4 ranks per chip through HBM, then 4 chips along one torus dimension."""
    spec = get_spec("trn2")
    inst = spec.instance("trn2.48xlarge")
    want = through_hbm(B, 4, spec.chip.hbm_bytes_per_ns, f) + ring(B, 4, inst.link_bytes_per_ns, inst.hop_latency_ns, f)
    for start, end in collective_spans("trn2", 2, 16, kind):
        assert end - start == pytest.approx(issue_ns("trn2") + want, rel=1e-9)


def test_trn1_32_ranks_on_the_whole_4x4_torus() -> None:
    """LNC=1 on trn1: 2 ranks per chip, 16 chips: ring along x on B, then along y on B/4."""
    spec = get_spec("trn1")
    inst = spec.instance("trn1.32xlarge")
    bw, hop = inst.link_bytes_per_ns, inst.hop_latency_ns
    want = through_hbm(B, 2, spec.chip.hbm_bytes_per_ns, 2) + ring(B, 4, bw, hop, 2) + ring(B / 4, 4, bw, hop, 2)
    for start, end in collective_spans("trn1", 1, 32, "all_reduce"):
        assert end - start == pytest.approx(issue_ns("trn1") + want, rel=1e-9)


def test_trn3_all_gather_through_the_switch() -> None:
    """8 ranks at LNC=2 on 2 trn3 chips: through HBM, then one switched hop."""
    spec = get_spec("trn3")
    inst = min((i for i in spec.instances if i.chips >= 2), key=lambda i: i.chips)
    total = 8 * B  # all-gather's result
    want = through_hbm(total, 4, spec.chip.hbm_bytes_per_ns, 1) + (1 / 2) * total / inst.link_bytes_per_ns
    want += inst.hop_latency_ns
    for start, end in collective_spans("trn3", 2, 8, "all_gather"):
        assert end - start == pytest.approx(issue_ns("trn3") + want, rel=1e-9)


def test_permute_between_neighbouring_chips_is_one_hop() -> None:
    spec = get_spec("trn2")
    inst = spec.instance("trn2.48xlarge")
    pairs = [(0, 4), (4, 0)]  # rank 4 is on chip 1, next to chip 0 on the torus
    want = B / inst.link_bytes_per_ns + 1 * inst.hop_latency_ns
    for start, end in collective_spans("trn2", 2, 8, "permute", group=pairs):
        assert end - start == pytest.approx(issue_ns("trn2") + want, rel=1e-9)


def test_ranks_wait_for_the_last_to_arrive() -> None:
    spec = get_spec("trn2")
    want = through_hbm(B, 4, spec.chip.hbm_bytes_per_ns, 2) + issue_ns("trn2")
    spans = collective_spans("trn2", 2, 4, "all_reduce", late=6)
    on_time = collective_spans("trn2", 2, 4, "all_reduce")
    late_arrival = spans[0][0]
    assert late_arrival > on_time[0][0] + 100  # rank 0's extra work delays its arrival
    for r, (start, end) in enumerate(spans):
        assert end == pytest.approx(late_arrival + want, rel=1e-9)  # everyone finishes together
        if r:
            assert start == pytest.approx(on_time[r][0])  # the others arrived on time and waited
    assert np.isclose(spans[0][1] - spans[0][0], want)
