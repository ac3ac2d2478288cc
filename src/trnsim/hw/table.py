"""The hardware presets side by side as a Markdown table, generated so that documentation never copies a number.

Run: python -m trnsim.hw.table                 print the table
     python -m trnsim.hw.table --update FILE   rewrite the table between the BEGIN/END markers in FILE
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from trnsim.errors import SpecError
from trnsim.hw.presets import list_presets, load_preset
from trnsim.hw.spec import HardwareSpec

BEGIN = "<!-- BEGIN trnsim.hw.table (generated: python -m trnsim.hw.table --update FILE) -->"
END = "<!-- END trnsim.hw.table -->"

KIB = 1024
MIB = 1024**2
GIB = 1024**3


def _tensor_tflops(s: HardwareSpec) -> float:
    """bf16 peak of one core's systolic array: rows x cols multiply-adds (2 FLOP) per cycle."""
    t = s.core.tensor
    return t.pe_rows * t.pe_cols * 2 * t.clock_ghz / 1000.0


def _g(x: float) -> str:
    return f"{x:,.4g}"


def _cores(s: HardwareSpec) -> str:
    return f"{s.chip.physical_cores} (LNC={s.chip.default_lnc})"


def _array(s: HardwareSpec) -> str:
    t = s.core.tensor
    return f"{t.pe_rows}x{t.pe_cols}, {t.clock_ghz:g} GHz"


def _chip_peak(s: HardwareSpec) -> str:
    return f"{_g(_tensor_tflops(s) * s.chip.physical_cores)} / {_g(s.chip.dense_bf16_tflops)}"


def _matmul_modes(s: HardwareSpec) -> str:
    t = s.core.tensor
    return f"{t.fp32_cost_factor}x, {'yes' if t.fp8_double_row else 'no'}, {t.moving_fmax}"


def _clocks(s: HardwareSpec) -> str:
    c = s.core
    return f"{c.vector.clock_ghz:g} / {c.scalar.clock_ghz:g} / {c.gpsimd.clock_ghz:g} / {c.sync.clock_ghz:g}"


def _min_ii(s: HardwareSpec) -> str:
    c = s.core
    return f"{c.tensor.min_ii_cycles} / {c.vector.min_ii_cycles} / {c.scalar.min_ii_cycles}, {c.gpsimd.start_cycles}"


def _latencies(s: HardwareSpec) -> str:
    c = s.core
    return " / ".join(str(e.pipeline_latency_cycles) for e in (c.tensor, c.vector, c.scalar, c.gpsimd))


def _perf_modes(s: HardwareSpec) -> str:
    c = s.core
    return f"{c.vector.bf16_copy_speedup:g}x / {c.vector.bf16_speedup:g}x / {c.scalar.bf16_speedup:g}x"


def _vector_limits(s: HardwareSpec) -> str:
    return f"{s.core.vector.transpose_max}, {s.core.vector.bn_stats_fmax}"


def _strided(s: HardwareSpec) -> str:
    return f">= {s.core.sbuf.full_rate_max_stride_bytes} B: {s.core.sbuf.strided_slowdown:g}x"


def _sbuf(s: HardwareSpec) -> str:
    b = s.core.sbuf
    return f"{b.partitions} x {b.partition_bytes // KIB} KiB = {_g(b.partitions * b.partition_bytes / MIB)} MiB"


def _psum(s: HardwareSpec) -> str:
    p = s.core.psum
    return f"{p.partitions} x {p.banks} banks x {p.bank_bytes // KIB} KiB"


def _dma(s: HardwareSpec) -> str:
    d = s.core.dma
    return f"{d.queues} x {d.queue_bytes_per_ns:g} = {_g(d.queues * d.queue_bytes_per_ns)}"


def _dma_overheads(s: HardwareSpec) -> str:
    return f"{s.core.dma.fixed_latency_ns:g}, {s.core.dma.descriptor_overhead_bytes:g}"


def _hbm(s: HardwareSpec) -> str:
    return f"{_g(s.chip.hbm_bytes / GIB)}, {_g(s.chip.hbm_bytes_per_ns)}"


def _instances(s: HardwareSpec) -> str:
    return "; ".join(f"{i.name} ({i.chips}, {i.topology.value})" for i in s.instances)


# (row label, value of one preset). Each row is a preset field or a formula over fields, never a constant.
ROWS: list[tuple[str, Callable[[HardwareSpec], str]]] = [
    ("NeuronCore version", lambda s: f"v{s.core.nc_version}"),
    ("physical cores per chip (default LNC)", _cores),
    ("TensorE array, clock", _array),
    ("TensorE bf16 peak per core (TFLOPS)", lambda s: _g(_tensor_tflops(s))),
    ("chip bf16 peak (TFLOPS): cores x core peak / published", _chip_peak),
    ("matmul: fp32 cost factor, fp8 double-row, moving free max", _matmul_modes),
    ("VectorE / ScalarE / GpSimdE / Sync clock (GHz)", _clocks),
    ("MIN_II Tensor / Vector / Scalar (cycles), GpSimd start", _min_ii),
    ("pipeline latency Tensor / Vector / Scalar / GpSimd (cycles)", _latencies),
    ("bf16 perf mode: VectorE copy / VectorE other / ScalarE", _perf_modes),
    ("VectorE transpose max, bn_stats free max", _vector_limits),
    ("strided access: innermost stride, slowdown", _strided),
    ("SBUF per core", _sbuf),
    ("PSUM per core", _psum),
    ("DMA queues x bandwidth per core (GB/s)", _dma),
    ("DMA fixed latency (ns), descriptor overhead (B)", _dma_overheads),
    ("HBM per chip (GiB), bandwidth (GB/s)", _hbm),
    ("instances (chips, topology)", _instances),
]


def markdown_table(presets: list[str] | None = None) -> str:
    """The table for `presets` (default: every built-in preset), one column per preset."""
    names = presets if presets is not None else list_presets()
    specs = [load_preset(n) for n in names]
    lines = [
        "| | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for label, value in ROWS:
        lines.append(f"| {label} | " + " | ".join(value(s) for s in specs) + " |")
    return "\n".join(lines) + "\n"


def replace_between_markers(text: str, table: str, origin: str = "<text>") -> str:
    """`text` with whatever lies between the BEGIN and END markers replaced by `table`."""
    start = text.find(BEGIN)
    stop = text.find(END)
    if start < 0 or stop < start:
        raise SpecError(f"{origin}: no '{BEGIN}' ... '{END}' markers to put the preset table between; add them")
    head = text[: start + len(BEGIN)]
    return f"{head}\n{table}{text[stop:]}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m trnsim.hw.table", description=__doc__.splitlines()[0])
    parser.add_argument("--update", type=Path, help="Markdown file whose marked table to regenerate")
    args = parser.parse_args(argv)
    table = markdown_table()
    if args.update is None:
        print(table, end="")
        return
    path: Path = args.update
    try:
        path.write_text(replace_between_markers(path.read_text(), table, str(path)))
    except (OSError, SpecError) as err:  # one line for the user, not a traceback
        parser.exit(2, f"error: {err}\n")
    print(f"updated the preset table in {path}")


if __name__ == "__main__":
    main()
