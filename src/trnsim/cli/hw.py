"""`trnsim hw list|show`: the hardware presets and the sources of their numbers."""

from __future__ import annotations

import json
import re
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from trnsim.cli.hw_show_table import legend_table, source_legend, spec_table
from trnsim.hw import get_spec, list_presets, load_preset, preset_sources
from trnsim.hw.presets import PRESET_DIR, TARGET_ALIASES
from trnsim.runtime.units import fmt_bandwidth

app = typer.Typer(help="Hardware presets.", no_args_is_help=True)
console = Console()


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """List the built-in presets."""
    rows: list[dict[str, Any]] = []
    for name in list_presets():
        s = load_preset(name)
        rows.append(
            {
                "name": name,
                "description": s.description,
                "cores": s.chip.physical_cores,
                "tensor_clock_ghz": s.core.tensor.clock_ghz,
                "hbm_gib": s.chip.hbm_bytes / 2**30,
                "hbm_gbps": s.chip.hbm_bytes_per_ns,
                "instances": [i.name for i in s.instances],
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="trnsim hardware presets", box=box.SIMPLE_HEAD)
    for col in ("name", "cores", "bf16 TFLOPS", "HBM", "HBM bandwidth", "instances"):
        table.add_column(col, justify="left" if col in ("name", "instances") else "right")
    for r, name in zip(rows, list_presets()):
        s = load_preset(name)
        tensor = s.core.tensor
        modelled = tensor.pe_rows * tensor.pe_cols * 2 * tensor.clock_ghz * s.chip.physical_cores / 1000.0
        table.add_row(
            r["name"],
            str(r["cores"]),
            f"{modelled:,.0f} / {s.chip.dense_bf16_tflops:,.0f}",
            f"{r['hbm_gib']:g} GiB",
            fmt_bandwidth(r["hbm_gbps"] * 1e9),
            ", ".join(r["instances"]),
        )
    table.caption = (
        "bf16 TFLOPS: what the simulator runs at (PE array x TensorE clock x cores) / the published chip figure"
    )
    console.print(table)


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if isinstance(data, dict):
        for k, v in data.items():
            out.extend(_flatten(v, f"{prefix}{k}."))
    elif isinstance(data, list) and data and isinstance(data[0], dict):
        for item in data:
            out.extend(_flatten(item, f"{prefix[:-1]}[{item.get('name', '')}]."))
    else:
        out.append((prefix[:-1], data))
    return out


@app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="preset name (trn1, inf2, trn2, trn3) or a spec file"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Show every number of a preset with its source."""
    spec = get_spec(name)
    data = spec.model_dump(mode="json")
    sources = preset_sources(name) if name in list_presets() else {}
    if as_json:
        print(json.dumps({"spec": data, "sources": sources}, indent=2))
        return
    rows = [(k, v) for k, v in _flatten(data) if k not in ("name", "description")]
    console.print(spec_table(f"{spec.name}: {spec.description}", rows, sources))
    if sources:
        key = TARGET_ALIASES.get(name.lower(), name.lower())
        used = {tag for text in sources.values() for tag in re.findall(r"\[[\w-]+\]", text)}
        console.print(legend_table(source_legend(PRESET_DIR / f"{key}.toml"), used))
