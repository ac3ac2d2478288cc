"""Human units by magnitude; profile summaries print as tables that fit 80 columns; the bound they name."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
from trnsim.demo import tensor_add, tiled_matmul
from trnsim.runtime.profile import BOUND_BUSY_SHARE
from trnsim.runtime.units import fmt_bandwidth, fmt_bytes, fmt_flops_rate, fmt_time_us


@pytest.mark.parametrize(
    ("us", "text"),
    [(435_642.3, "436 ms"), (19.74, "19.7 µs"), (0.25, "250 ns"), (3.2e6, "3.2 s"), (137.0, "137 µs")],
)
def test_time_unit_by_magnitude(us: float, text: str) -> None:
    assert fmt_time_us(us) == text


def test_byte_and_rate_units(rng: np.random.Generator) -> None:
    assert fmt_bytes(198_075.2e6) == "198 GB"
    assert fmt_bytes(154_618_822_656) == "155 GB"
    assert fmt_bandwidth(368e9) == "368 GB/s" and fmt_flops_rate(629.1e12) == "629 TFLOPS"
    for _ in range(20):  # the printed number, read back with its prefix, is the value to 3 significant digits
        value = float(10 ** rng.uniform(0, 14))
        number, unit = fmt_bytes(value).split()
        scale = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]
        assert float(number.replace(",", "")) * scale == pytest.approx(value, rel=5e-3)
        assert 1 <= float(number.replace(",", "")) < 1000


def test_kernel_summary_prints_as_a_table_in_80_columns(rng: np.random.Generator) -> None:
    a = rng.standard_normal((256, 256)).astype(np.float32)
    prof = nki.profile(tiled_matmul, target="trn2")(a, a)
    text = str(prof.summary())
    assert "<rich.table" not in text and "latency" in text and "bound" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert fmt_time_us(prof.latency_us) in text


def test_bound_names_an_engine_only_when_it_is_mostly_busy(rng: np.random.Generator) -> None:
    a = rng.standard_normal((512, 256)).astype(np.float32)
    prof = nki.profile(tensor_add[4], target="trn2")(a, a)
    busy = prof.to_dict()["engine_busy_pct"]
    busiest = max(busy, key=lambda k: busy[k])
    expected = f"{busiest}-bound" if busy[busiest] >= 100 * BOUND_BUSY_SHARE else "latency-bound"
    assert prof.bound() == expected == prof.to_dict()["bound"]
    prof._engine_busy = {k: 0.0 for k in busy} | {"dma": 0.45 * prof.latency_us}
    assert prof.bound() == "latency-bound" and prof.bottleneck() == "dma"
    prof._engine_busy["dma"] = 0.95 * prof.latency_us
    assert prof.bound() == "dma-bound"
