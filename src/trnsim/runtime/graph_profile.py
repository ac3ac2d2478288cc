"""GraphProfile: what a compiled model's call costs on the simulated chip, op by op.

Kernels run one after another on each tensor-parallel rank (the kernel-level timeline is inside each
kernel's own simulation), so device time is the sum of the ops' device times. Host-fallback ops run on the
CPU: their (measured) time is listed separately and kept out of device time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.markup import escape

from trnsim.hw.spec import HardwareSpec
from trnsim.runtime.printable import PrintableTable
from trnsim.runtime.units import fmt_bytes, fmt_gib, fmt_time_us

OP_KINDS = ("kernel", "move", "collective", "view", "const", "host")


@dataclass
class OpRecord:
    """One graph node as executed: a library kernel, a data move, a collective, a free view, or host fallback."""

    node: str
    op: str  # ATen overload name, or the fused pattern's name
    kind: str  # one of OP_KINDS
    kernel: str = ""
    device_us: float = 0.0
    host_us: float = 0.0
    flops: int = 0
    hbm_bytes: int = 0
    engine_busy_us: dict[str, float] = field(default_factory=dict)
    count: int = 1  # identical repeats folded into one record (e.g. the layers of a decoder)
    source: str = ""  # the model source line this op came from
    shapes: str = ""

    @property
    def total_device_us(self) -> float:
        return self.device_us * self.count


@dataclass(frozen=True)
class MfuPeak:
    """The TensorE rate MFU is measured against: the bf16 peak, or that of the format the weight matmuls ran in
    (MXFP8 / MXFP4 on NeuronCore-v4: mx_speedup x bf16; compiler/dtype_estimate.py sets it)."""

    dtype: str = "bf16"
    speedup: float = 1.0


@dataclass
class GraphProfile:
    target: str
    mode: str
    spec: HardwareSpec
    tp: int = 1
    cores_per_rank: int = 1
    records: list[OpRecord] = field(default_factory=list)
    cache_hits: int = 0
    cache_misses: int = 0
    label: str = ""
    compile_seconds: float = 0.0  # capture + simulation wall time (estimates)
    # HBM memory plan (trnsim.compiler.memory_plan): resident weights, the peak of simultaneously live
    # activations, and the activation arena greedy buffer reuse needs (>= that peak)
    weight_bytes: int = 0
    activation_peak_bytes: int = 0
    activation_arena_bytes: int = 0
    reused_buffers: int = 0
    # device time of each tensor-parallel rank of a compiled tp run (empty: one rank, or an estimate, whose
    # ranks run the same program by construction)
    rank_device_us: list[float] = field(default_factory=list)
    # functions Dynamo stopped compiling (its recompile limit) that run eagerly while this profile was recorded:
    # their work is not in it (trnsim.compiler.backend_guard)
    eager_fallback: list[str] = field(default_factory=list)
    mfu_peak: MfuPeak = field(default_factory=MfuPeak)

    # -- headline numbers ---------------------------------------------------------------------------------
    @property
    def device_time_us(self) -> float:
        return sum(r.total_device_us for r in self.records if r.kind != "host")

    @property
    def latency_us(self) -> float:
        return self.device_time_us

    @property
    def host_fallback(self) -> list[OpRecord]:
        return [r for r in self.records if r.kind == "host"]

    @property
    def host_time_us(self) -> float:
        return sum(r.host_us * r.count for r in self.host_fallback)

    @property
    def flops(self) -> int:
        """TensorE FLOPs of one rank."""
        return sum(r.flops * r.count for r in self.records)

    @property
    def hbm_bytes(self) -> int:
        """HBM bytes moved by one rank."""
        return sum(r.hbm_bytes * r.count for r in self.records)

    @property
    def collective_us(self) -> float:
        return sum(r.total_device_us for r in self.records if r.kind == "collective")

    @property
    def peak_tflops(self) -> float:
        """TensorE peak of the physical cores one rank uses, in the format of `mfu_peak` (bf16 unless set)."""
        t = self.spec.core.tensor
        return t.pe_rows * t.pe_cols * 2 * t.clock_ghz * self.cores_per_rank / 1000.0 * self.mfu_peak.speedup

    @property
    def mfu(self) -> float:
        t = self.device_time_us
        return self.flops / (t * 1e6) / self.peak_tflops if t and self.peak_tflops else 0.0

    @property
    def hbm_gbps(self) -> float:
        t = self.device_time_us
        return self.hbm_bytes / (t * 1000.0) if t else 0.0

    @property
    def peak_hbm_bytes(self) -> int:
        """HBM footprint of one rank at its peak: weights plus the activation arena."""
        return self.weight_bytes + self.activation_arena_bytes

    @property
    def hbm_capacity_bytes(self) -> int:
        """HBM one rank (logical core) owns: the chip's HBM shared evenly by its logical cores."""
        chip = self.spec.chip
        return int(chip.hbm_bytes // max(1, chip.physical_cores // chip.default_lnc))

    @property
    def fits_hbm(self) -> bool:
        return self.peak_hbm_bytes <= self.hbm_capacity_bytes

    def engine_busy_us(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for r in self.records:
            for k, v in r.engine_busy_us.items():
                out[k] += v * r.count
        return dict(out)

    def bottleneck(self) -> str:
        busy = self.engine_busy_us()
        return max(busy, key=lambda k: busy[k]) if busy else "none"

    # -- breakdowns ------------------------------------------------------------------------------------
    def _group(self, key: str) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = defaultdict(
            lambda: {"count": 0, "device_us": 0.0, "flops": 0, "hbm_bytes": 0}
        )
        for r in self.records:
            name = getattr(r, key) or f"({r.kind})"
            g = out[name]
            g["count"] += r.count
            g["device_us"] += r.total_device_us
            g["flops"] += r.flops * r.count
            g["hbm_bytes"] += r.hbm_bytes * r.count
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["device_us"]))

    def by_kernel(self) -> dict[str, dict[str, float]]:
        return self._group("kernel")

    def by_op(self) -> dict[str, dict[str, float]]:
        return self._group("op")

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "target": self.target,
            "mode": self.mode,
            "tp": self.tp,
            "device_time_us": self.device_time_us,
            "host_time_us": self.host_time_us,
            "collective_us": self.collective_us,
            "rank_device_us": list(self.rank_device_us),
            "flops_per_rank": self.flops,
            "hbm_bytes_per_rank": self.hbm_bytes,
            "mfu": self.mfu,
            "mfu_peak": {"dtype": self.mfu_peak.dtype, "tflops": self.peak_tflops, "speedup": self.mfu_peak.speedup},
            "hbm_gbps": self.hbm_gbps,
            "bottleneck": self.bottleneck(),
            "weight_bytes": self.weight_bytes,
            "activation_peak_bytes": self.activation_peak_bytes,
            "activation_arena_bytes": self.activation_arena_bytes,
            "reused_buffers": self.reused_buffers,
            "peak_hbm_bytes": self.peak_hbm_bytes,
            "hbm_capacity_bytes": self.hbm_capacity_bytes,
            "fits_hbm": self.fits_hbm,
            "engine_busy_us": self.engine_busy_us(),
            "by_kernel": self.by_kernel(),
            "by_op": self.by_op(),
            "host_fallback": [
                {"op": r.op, "node": r.node, "host_us": r.host_us, "source": r.source} for r in self.host_fallback
            ],
            "eager_fallback": list(self.eager_fallback),
            "kernel_cache": {"hits": self.cache_hits, "misses": self.cache_misses},
            "compile_seconds": self.compile_seconds,
            "ops": [asdict(r) for r in self.records],
        }

    def summary(self, top: int = 12) -> PrintableTable:
        """The top kernels by device time and the memory plan; `print()` it or pass it to a rich Console."""
        t = self.device_time_us
        title = f"{self.label or 'model'} on {self.target} ({self.mode}, tp={self.tp})"
        table = PrintableTable(title=title)
        table.add_column("op / kernel")
        table.add_column("count", justify="right")
        table.add_column("device time", justify="right")
        table.add_column("share", justify="right")
        for name, g in list(self.by_kernel().items())[:top]:
            share = 100 * g["device_us"] / t if t else 0.0
            table.add_row(escape(name), f"{int(g['count'])}", fmt_time_us(g["device_us"]), f"{share:.1f}%")
        table.add_section()
        table.add_row("device time", "", fmt_time_us(t), "")
        peak = f"of {self.mfu_peak.dtype} peak, {self.peak_tflops:,.0f} TFLOPS"
        table.add_row("MFU", "", f"{100 * self.mfu:.1f}%", escape(peak))
        table.add_row("HBM traffic / rank", "", fmt_bytes(self.hbm_bytes), "")
        fits = "fits" if self.fits_hbm else f"> {fmt_gib(self.hbm_capacity_bytes)}"
        table.add_row("HBM peak / rank", "", fmt_bytes(self.peak_hbm_bytes), fits)
        table.add_row("  weights", "", fmt_bytes(self.weight_bytes), "")
        table.add_row("  activations (arena)", "", fmt_bytes(self.activation_arena_bytes), "")
        if self.host_fallback:
            ops = sorted({r.op for r in self.host_fallback})
            table.add_row(
                "host fallback", f"{len(self.host_fallback)}", f"({fmt_time_us(self.host_time_us)} on CPU)", ""
            )
            table.caption = escape(f"ran on the host CPU (no lowering): {', '.join(ops)}")
        if self.eager_fallback:  # Dynamo ran these eagerly: the table is missing their work
            table.add_row("partly eager", f"{len(self.eager_fallback)}", "not in this profile", "")
            notes = "; ".join(self.eager_fallback)
            table.caption = escape(f"{table.caption}; {notes}" if table.caption else notes)
        return table
