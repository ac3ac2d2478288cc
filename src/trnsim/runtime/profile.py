"""Profile: what a simulated kernel run reports (latency, engine busy time, FLOPs, HBM traffic, ...)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from trnsim.hw.spec import HardwareSpec
from trnsim.isa.instruction import Instruction
from trnsim.isa.opcodes import Engine
from trnsim.runtime.printable import PrintableTable
from trnsim.runtime.units import fmt_bandwidth, fmt_bytes, fmt_flop, fmt_flops_rate, fmt_time_us
from trnsim.sim.timeline import Timeline

ENGINE_KEYS = ("tensor", "vector", "scalar", "gpsimd", "sync", "dma")
# An engine busy for less than this share of the kernel is not what bounds it: the rest of the time goes to
# waiting (dependencies, fixed DMA and semaphore latency), so the kernel is latency-bound. A reading aid for
# the summary, not a timing constant: no latency depends on it.
BOUND_BUSY_SHARE = 0.6


@dataclass
class Profile:
    kernel_name: str
    target: str
    mode: str
    spec: HardwareSpec
    instructions: list[Instruction]
    timeline: Timeline
    warnings: list[str]
    sbuf_peak_bytes: int  # per partition, max over cores
    psum_peak_bytes: int  # per partition, max over cores
    grid: tuple[int, ...] = (1,)
    outputs: Any = None
    _engine_busy: dict[str, float] | None = field(default=None, repr=False)

    # -- headline numbers -------------------------------------------------------------------------------
    @property
    def latency_us(self) -> float:
        return self.timeline.makespan_ns / 1000.0

    @property
    def instruction_count(self) -> int:
        return len(self.instructions)

    @property
    def flops(self) -> int:
        return sum(i.flops for i in self.instructions)

    @property
    def hbm_bytes(self) -> int:
        return sum(i.hbm_bytes for i in self.instructions)

    @property
    def n_cores(self) -> int:
        return self.timeline.n_cores

    @property
    def engine_busy_us(self) -> dict[str, float]:
        """Busy time per engine, on the busiest core; 'dma' is time any DMA queue of that core moves data."""
        if self._engine_busy is None:
            self._engine_busy = {
                key: max(self.timeline.engine_busy_ns(c, Engine[key.upper()]) for c in range(self.n_cores)) / 1000.0
                for key in ENGINE_KEYS
            }
        return self._engine_busy

    @property
    def peak_tflops(self) -> float:
        """TensorE bf16 peak of the cores used: rows x cols x 2 FLOP x clock."""
        t = self.spec.core.tensor
        return t.pe_rows * t.pe_cols * 2 * t.clock_ghz * self.n_cores / 1000.0

    @property
    def achieved_tflops(self) -> float:
        return self.flops / (self.latency_us * 1e6) if self.latency_us else 0.0

    @property
    def mfu(self) -> float:
        """FLOPs done / (bf16 peak x latency) over the cores used."""
        return self.achieved_tflops / self.peak_tflops if self.peak_tflops else 0.0

    @property
    def hbm_gbps(self) -> float:
        return self.hbm_bytes / (self.latency_us * 1000.0) if self.latency_us else 0.0

    def bottleneck(self) -> str:
        """The busiest engine ('dma' for the DMA queues taken together)."""
        busy = self.engine_busy_us
        return max(busy, key=lambda k: busy[k])

    def bound(self) -> str:
        """What bounds the kernel: '<engine>-bound' when its busiest engine is busy for at least
        BOUND_BUSY_SHARE of the latency, else 'latency-bound' (the engines mostly wait)."""
        lat = self.latency_us
        busiest = self.bottleneck()
        if lat and self.engine_busy_us[busiest] >= BOUND_BUSY_SHARE * lat:
            return f"{busiest}-bound"
        return "latency-bound"

    def by_opcode(self) -> dict[str, dict[str, float]]:
        """Instruction count and busy time (µs, summed over cores and queues) per instruction label."""
        tl = self.timeline
        out: dict[str, dict[str, float]] = defaultdict(lambda: {"count": 0, "busy_us": 0.0})
        for ins in self.instructions:
            out[ins.opcode.key]["count"] += 1
        for idx, s, e in zip(tl.slice_instr.tolist(), tl.slice_start.tolist(), tl.slice_end.tolist()):
            out[self.instructions[idx].opcode.key]["busy_us"] += (e - s) / 1000.0
        return dict(out)

    # -- exports --------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        lat = self.latency_us
        return {
            "kernel": self.kernel_name,
            "target": self.target,
            "mode": self.mode,
            "grid": list(self.grid),
            "cores": self.n_cores,
            "latency_us": lat,
            "engine_busy_us": self.engine_busy_us,
            "engine_busy_pct": {k: (100.0 * v / lat if lat else 0.0) for k, v in self.engine_busy_us.items()},
            "bottleneck": self.bottleneck(),
            "bound": self.bound(),
            "instruction_count": self.instruction_count,
            "flops": self.flops,
            "achieved_tflops": self.achieved_tflops,
            "mfu": self.mfu,
            "hbm_bytes": self.hbm_bytes,
            "hbm_gbps": self.hbm_gbps,
            "sbuf_peak_bytes_per_partition": self.sbuf_peak_bytes,
            "psum_peak_bytes_per_partition": self.psum_peak_bytes,
            "by_opcode": self.by_opcode(),
            "warnings": list(self.warnings),
        }

    def summary(self) -> PrintableTable:
        """The headline numbers as a table; `print()` it or pass it to a rich Console."""
        lat = self.latency_us
        table = PrintableTable(title=f"{self.kernel_name} on {self.target} ({self.mode}, {self.n_cores} core(s))")
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_row("latency", fmt_time_us(lat))
        for key, busy in self.engine_busy_us.items():
            table.add_row(f"{key} busy", f"{fmt_time_us(busy)} ({100 * busy / lat if lat else 0:.0f}%)")
        bound, busiest = self.bound(), self.bottleneck()
        share = 100 * self.engine_busy_us[busiest] / lat if lat else 0.0
        table.add_row("bound", bound if bound != "latency-bound" else f"{bound} (busiest: {busiest}, {share:.0f}%)")
        table.add_row("instructions", f"{self.instruction_count:,}")
        table.add_row("TensorE work", f"{fmt_flop(self.flops)} ({fmt_flops_rate(self.achieved_tflops * 1e12)})")
        table.add_row("MFU", f"{100 * self.mfu:.1f}% of {fmt_flops_rate(self.peak_tflops * 1e12)}")
        table.add_row("HBM traffic", f"{fmt_bytes(self.hbm_bytes)} ({fmt_bandwidth(self.hbm_gbps * 1e9)})")
        table.add_row("SBUF peak", f"{fmt_bytes(self.sbuf_peak_bytes)} per partition")
        table.add_row("PSUM peak", f"{fmt_bytes(self.psum_peak_bytes)} per partition")
        for w in self.warnings[:5]:
            table.add_row("warning", escape(w))
        return table

    def to_perfetto(self, path: str | Path) -> Path:
        from trnsim.report.perfetto import write_trace

        return write_trace(self, Path(path))
