"""The DMA cost against its closed form, computed here from the preset values (issue 11).

One transfer is a queue's piece of a DMA (up to 8 SBUF partitions on 16 queues). Its data time is
bytes / (queue rate x b / (b + descriptor overhead)); it holds its queue for max(per-transfer overhead,
data time) (DMA bandwidth guide: small transfers are bound by the transfer rate); its result is ready
data time + fixed latency after it starts.
"""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.hw import load_preset
from trnsim.hw.presets import spec_from_dict
from trnsim.hw.spec import DmaSpec
from trnsim.isa.cost import dma_queue_occupancy_ns, dma_queue_pieces, dma_transfer_ns
from trnsim.isa.opcodes import Opcode
from trnsim.sim.timeline import N_ENGINES

TARGETS = ("trn1", "inf2", "trn2", "trn3")


def data_ns(d: DmaSpec, nbytes: float, row_bytes: int) -> float:
    """Data time of one transfer at the queue's own rate, written out from the preset."""
    return nbytes / (d.queue_bytes_per_ns * row_bytes / (row_bytes + d.descriptor_overhead_bytes))


@pytest.mark.parametrize("target", TARGETS)
def test_occupancy_is_the_larger_of_overhead_and_data_time(rng: np.random.Generator, target: str) -> None:
    d = load_preset(target).core.dma
    assert d.transfer_overhead_ns > 0  # every preset models it
    for row in rng.integers(16, 65536, 20):
        nbytes = float(row) * int(rng.integers(1, 9))  # up to 8 partitions per transfer
        data = dma_transfer_ns(d, nbytes, int(row), 1e9)
        assert data == pytest.approx(data_ns(d, nbytes, int(row)))
        assert dma_queue_occupancy_ns(d, data) == pytest.approx(max(d.transfer_overhead_ns, data))


def test_knee_is_where_data_time_reaches_the_overhead() -> None:
    """Below the knee the queue rate is the transfer rate (bytes / overhead); above it the bandwidth."""
    d = load_preset("trn1").core.dma
    small, large = 8 * 1024, 64 * 1024  # bytes per transfer, 8 rows of 1 KiB / 8 KiB
    t_small = dma_queue_occupancy_ns(d, data_ns(d, small, small // 8))
    t_large = dma_queue_occupancy_ns(d, data_ns(d, large, large // 8))
    assert t_small == d.transfer_overhead_ns
    assert t_large == pytest.approx(data_ns(d, large, large // 8)) and t_large > d.transfer_overhead_ns


def test_user_spec_without_the_field_keeps_the_bandwidth_model() -> None:
    base = load_preset("trn1").model_dump()
    del base["core"]["dma"]["transfer_overhead_ns"]
    d = spec_from_dict(base).core.dma
    assert d.transfer_overhead_ns == 0.0
    assert dma_queue_occupancy_ns(d, 123.0) == 123.0


def _stream(free: int):  # type: ignore[no-untyped-def]
    """`n` independent [128, free] loads into their own tiles, then one dependent store."""

    @nki.jit
    def stream(x):
        out = nl.ndarray((128, 1), x.dtype, buffer=nl.shared_hbm)
        last = None
        for i in nl.affine_range(x.shape[1] // free):
            t = nl.ndarray((128, free), x.dtype, buffer=nl.sbuf)
            nisa.dma_copy(dst=t, src=x[:, i * free : (i + 1) * free])
            last = t
        nisa.dma_copy(dst=out, src=last[:, 0:1])
        return out

    return stream


@pytest.mark.parametrize("target", ["trn1", "trn2"])
@pytest.mark.parametrize("free", [128, 512, 4096])
def test_load_stream_runs_at_the_transfer_rate_or_the_bandwidth(target: str, free: int) -> None:
    """A stream of loads keeps every queue busy: each load takes max(overhead, data time) on all 16 queues."""
    n = 24
    d = load_preset(target).core.dma
    prof = nki.profile(_stream(free), target=target, mode="timing", cores=1)(
        nki.TensorSpec((128, free * n), "bfloat16")
    )
    row = free * 2
    per_load = max(d.transfer_overhead_ns, data_ns(d, 128 * row / d.queues, row))
    tl = prof.timeline
    loads = [
        (s, e)
        for i, s, e, u in zip(tl.slice_instr, tl.slice_start, tl.slice_end, tl.slice_unit)
        if prof.instructions[i].opcode is Opcode.DMA_COPY
        and u >= N_ENGINES
        and prof.instructions[i].dma_bytes == 128 * row
    ]
    assert len(loads) == n * d.queues
    assert all(e - s == pytest.approx(per_load) for s, e in loads)
    # the queues never idle: the last load ends n transfers after the first starts
    assert max(e for _, e in loads) - min(s for s, _ in loads) == pytest.approx(n * per_load)


@pytest.mark.parametrize("target", TARGETS)
def test_single_load_latency_is_data_time_plus_fixed_latency(target: str) -> None:
    """The overhead limits the rate, not the latency: a lone load then a dependent store each pay data + latency."""

    @nki.jit
    def load_store(x):
        t = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=t)
        return out

    d = load_preset(target).core.dma
    free = 64
    prof = nki.profile(load_store, target=target, mode="timing")(nki.TensorSpec((128, free), "float32"))
    data = data_ns(d, 128 * free * 4 / d.queues, free * 4)
    assert prof.latency_us == pytest.approx(2 * (data + d.fixed_latency_ns) / 1000)


@pytest.mark.parametrize(("rows", "queues"), [(1, 1), (4, 1), (8, 1), (9, 2), (64, 8), (100, 13), (128, 16)])
def test_each_queue_takes_eight_partitions(rows: int, queues: int) -> None:
    """128 partitions over 16 queues: ceil(rows / 8) queues (DMA overview, examples 1 and 2)."""
    core = load_preset("trn2").core
    assert core.sbuf.partitions // core.dma.queues == 8
    assert dma_queue_pieces(core, rows) == queues


def test_four_partition_load_runs_on_one_queue() -> None:
    """The DMA overview's example 1: [4, 4096] bf16 HBM -> SBUF is one 32 KiB transfer on one engine (its
    Trn2 profile shows 1416 ns), holding the queue max(overhead, data time)."""

    @nki.jit
    def narrow(x):
        t = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        return t

    d = load_preset("trn2").core.dma
    prof = nki.profile(narrow, target="trn2", mode="timing")(nki.TensorSpec((4, 4096), "bfloat16"))
    tl = prof.timeline
    pieces = [(s, e) for s, e, u in zip(tl.slice_start, tl.slice_end, tl.slice_unit) if u >= N_ENGINES]
    assert len(pieces) == 1
    data = data_ns(d, 4 * 4096 * 2, 4096 * 2)
    assert pieces[0][1] - pieces[0][0] == pytest.approx(max(d.transfer_overhead_ns, data))
    assert data == pytest.approx(1416, rel=0.05)  # the profiled time, within 5%
