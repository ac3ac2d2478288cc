"""compiler/move_cost.py against closed forms written from the preset's DMA numbers: a copy's runs split over
ceil(runs / 8) queues, each piece holding its queue max(per-transfer overhead, data time)."""

from __future__ import annotations

import pytest

from trnsim.compiler.move_cost import move_cost
from trnsim.hw import load_preset


def _data_ns(target: str, nbytes: float, run: int, queues: int) -> float:
    spec = load_preset(target)
    d = spec.core.dma
    rate = min(d.queue_bytes_per_ns, spec.chip.hbm_bytes_per_ns / queues) * run / (run + d.descriptor_overhead_bytes)
    return 2 * nbytes / queues / rate


@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_large_copy_is_data_bound_on_every_queue(target: str) -> None:
    d = load_preset(target).core.dma
    nbytes, run = 64 * 2**20, 4096
    us, busy = move_cost(load_preset(target), nbytes, run)
    data = _data_ns(target, nbytes, run, d.queues)
    assert data > d.transfer_overhead_ns
    assert us == pytest.approx((data + d.fixed_latency_ns) / 1000)
    assert busy["dma"] == pytest.approx(data / 1000)


@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_small_copy_pays_the_per_transfer_overhead(target: str) -> None:
    """16 runs of 256 B: two queues (8 runs each), each piece far below the per-transfer overhead."""
    d = load_preset(target).core.dma
    us, busy = move_cost(load_preset(target), 16 * 256, 256)
    assert _data_ns(target, 16 * 256, 256, 2) < d.transfer_overhead_ns
    assert us == pytest.approx((d.transfer_overhead_ns + d.fixed_latency_ns) / 1000)
    assert busy["dma"] == pytest.approx(d.transfer_overhead_ns / 1000)


def test_few_runs_use_few_queues() -> None:
    """A copy of 8 long runs goes through one queue: 16x the time of the same bytes in 128 runs."""
    spec = load_preset("trn2")
    d = spec.core.dma
    run = 2**20
    one_queue, _ = move_cost(spec, 8 * run, run)
    assert one_queue == pytest.approx((_data_ns("trn2", 8 * run, run, 1) + d.fixed_latency_ns) / 1000)
    all_queues, _ = move_cost(spec, 8 * run, run // 16)
    assert all_queues < one_queue / 10
