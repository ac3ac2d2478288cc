"""Human units chosen by magnitude, for tables and prints: 435.6 ms rather than 435,642.3 µs.

Decimal prefixes throughout (1 GB = 1e9 bytes), as AWS and NVIDIA quote bandwidth and HBM sizes; binary sizes
(GiB) only where a datasheet states them, via `fmt_gib`.
"""

from __future__ import annotations

_TIME_STEPS = ((1e6, "s"), (1e3, "ms"), (1.0, "µs"), (1e-3, "ns"))
_DECIMAL = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""))


def _three_digits(value: float) -> str:
    """Three significant digits: 435.64 -> '436', 19.74 -> '19.7', 3.2 -> '3.2'; thousands stay whole."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def fmt_time_us(us: float) -> str:
    """A duration given in microseconds, in s, ms, µs or ns."""
    for scale, unit in _TIME_STEPS:
        if abs(us) >= scale:
            return f"{_three_digits(us / scale)} {unit}"
    return f"{_three_digits(us * 1e3)} ns"


def _decimal(value: float, unit: str) -> str:
    for scale, prefix in _DECIMAL:
        if abs(value) >= scale:
            return f"{_three_digits(value / scale)} {prefix}{unit}"
    return f"{_three_digits(value)} {unit}"


def fmt_bytes(n: float) -> str:
    """Bytes in B, kB, MB, GB, TB (decimal)."""
    return _decimal(n, "B")


def fmt_gib(n: float) -> str:
    """Bytes in GiB, for capacities published in binary units (HBM stacks)."""
    return f"{n / 2**30:g} GiB"


def fmt_bandwidth(bytes_per_s: float) -> str:
    """Bytes per second in MB/s, GB/s, TB/s."""
    return _decimal(bytes_per_s, "B/s")


def fmt_flops_rate(flop_per_s: float) -> str:
    """FLOP/s as GFLOPS, TFLOPS or PFLOPS."""
    return _decimal(flop_per_s, "FLOPS")


def fmt_count(n: float) -> str:
    """A large count with a decimal prefix: 1.2 G, 350 k; small counts as they are."""
    return f"{int(n):,}" if abs(n) < 1e4 else _decimal(n, "").strip()


def fmt_flop(n: float) -> str:
    """An amount of work in FLOP, kFLOP ... PFLOP."""
    return _decimal(n, "FLOP")
