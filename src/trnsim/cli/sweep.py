"""`trnsim sweep`: serve a model over a grid of hardware-spec fields and serving parameters, in local
processes or on Ray, and write the table (CSV, Parquet) and a Pareto plot.

Ray: `--ray` runs on a local Ray cluster started for the sweep (or the one `RAY_ADDRESS` names, as Ray does);
`--ray-address ADDRESS` (e.g. ray://head:10001) runs on that cluster and implies --ray. (typer has no flag
with an optional value, so the address is its own option.)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

SHOWN_METRICS = ("throughput_tok_s", "ttft_ms_p99", "tpot_ms_p50", "tpot_ms_p99", "usd_per_mtok", "j_per_tok")
# short two-line headers so the table fits 80 columns; the CSV and --json keep the column names
METRIC_HEADERS = {
    "throughput_tok_s": "out\ntok/s",
    "ttft_ms_p99": "TTFT\np99 ms",
    "tpot_ms_p50": "TPOT\np50 ms",
    "tpot_ms_p99": "TPOT\np99 ms",
    "usd_per_mtok": "$ per\nM tok",
    "j_per_tok": "J per\ntok",
}


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,.4g}" if isinstance(value, float) else str(value)


def _param_header(name: str) -> str:
    """A dotted hardware field on two lines: its section, then its name (chip. / hbm_bytes_per_ns)."""
    head, dot, leaf = name.rpartition(".")
    return f"{head}{dot}\n{leaf}" if dot else name


def _print_table(rows: list[dict[str, Any]], params: list[str], front_ids: set[int], title: str) -> None:
    table = Table(title=escape(title), box=box.SIMPLE_HEAD)
    table.add_column("Pareto", justify="center")
    for name in params:
        table.add_column(escape(_param_header(name)), justify="right", overflow="fold")
    for name in SHOWN_METRICS:
        table.add_column(escape(METRIC_HEADERS[name]), justify="right", no_wrap=True)
    for row in rows:
        cells = [_fmt(row.get(n)) for n in (*params, *SHOWN_METRICS)]
        if row.get("error"):
            cells = [*cells[: len(params)], f"[red]{escape(row['error'])}[/]"] + [""] * (len(SHOWN_METRICS) - 1)
        table.add_row("*" if id(row) in front_ids else "", *cells)
    Console().print(table)


def sweep_command(
    model: str = typer.Option(..., help="model preset (e.g. llama-3.1-8b) or a config.json path"),
    hw: str = typer.Option("trn2", help="hardware preset or spec file whose fields the sweep varies"),
    instance: str | None = typer.Option(None, help="instance of the spec (default: its first priced one)"),
    sets: list[str] = typer.Option(
        [], "--set", help="an axis NAME=V1,V2,... (hardware field by dotted path, or tp, max_batch, scheduler, ...)"
    ),
    file: Path | None = typer.Option(
        None, "--file", help="TOML sweep file: a set table of NAME = list of values (--set adds or replaces axes)"
    ),
    samples: int | None = typer.Option(None, min=1, help="evaluate this many random grid points, not the grid"),
    seed: int | None = typer.Option(None, help="seed of the sampling and the workload (default: the file's, or 0)"),
    requests: int = typer.Option(200, min=1, help="requests simulated per point"),
    rate: float | None = typer.Option(None, help="arrival rate, requests/s (Poisson)"),
    concurrency: int | None = typer.Option(None, min=1, help="closed-loop clients, instead of a rate"),
    prompt: str = typer.Option("512", help="prompt tokens: N, LOW-HIGH or zipf:S:LOW-HIGH"),
    output: str = typer.Option("128", help="output tokens: N, LOW-HIGH or zipf:S:LOW-HIGH"),
    tp: int = typer.Option(1, min=1, help="tensor-parallel ranks per replica, unless swept"),
    scheduler: str = typer.Option("continuous", help="continuous, chunked or static, unless swept"),
    max_batch: int | None = typer.Option(None, min=1, help="scheduler's sequences per step cap, unless swept"),
    slo_ttft_ms: float | None = typer.Option(None, help="TTFT target for goodput"),
    slo_tpot_ms: float | None = typer.Option(None, help="TPOT target for goodput"),
    step_cost: str = typer.Option("estimate", help="estimate (compiler + simulator) or roofline (analytic)"),
    use_ray: bool = typer.Option(False, "--ray", help="run the points as Ray tasks (local cluster by default)"),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster address; implies --ray"),
    workers: int | None = typer.Option(None, min=1, help="local processes (or CPUs of a local Ray cluster)"),
    out: Path = typer.Option(Path("out/sweep"), help="folder for sweep.csv, sweep.parquet, pareto.png/svg"),
    x: str = typer.Option("usd_per_mtok", help="Pareto plot x metric"),
    y: str = typer.Option("throughput_tok_s", help="Pareto plot y metric (e.g. tpot_ms_p50)"),
    fresh: bool = typer.Option(False, "--fresh", help="evaluate every point again, ignoring OUT/rows.jsonl"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Sweep hardware-spec fields and serving parameters for MODEL; write a table and a Pareto plot.

    Each finished point is written to OUT/rows.jsonl at once: an interrupted sweep rerun with the same
    settings evaluates only the points still missing."""
    from trnsim.hw import get_spec
    from trnsim.sweep import (
        LOWER_IS_BETTER,
        METRIC_COLUMNS,
        Evaluator,
        ServingSetup,
        SweepError,
        pareto_front,
        parquet_available,
        parse_sets,
        plot_pareto,
        read_space_file,
        run_sweep,
        step_cost_factory,
        write_csv,
        write_parquet,
    )
    from trnsim.sweep.field_effect import fields_without_effect
    from trnsim.sweep.replica_shape import default_instance
    from trnsim.sweep.row_log import RowLog, point_key

    spec = get_spec(hw)
    base = read_space_file(file, spec) if file is not None else None
    space = parse_sets(
        sets,
        base=base.axes if base else (),
        samples=samples if samples is not None else (base.samples if base else None),
        seed=seed if seed is not None else (base.seed if base else 0),
        spec=spec,
    )
    if not space.axes:
        raise SweepError("nothing to sweep: give --set NAME=V1,V2 (e.g. --set chip.hbm_bytes_per_ns=2900,5800)")
    names = [a.name for a in space.axes]
    if rate is None and concurrency is None and "rate" not in names and "concurrency" not in names:
        raise SweepError("give --rate (requests/s) or --concurrency (clients), or sweep one of them (--set rate=...)")
    for metric in (x, y):
        if metric not in METRIC_COLUMNS or metric in ("error", "preemptions"):
            allowed = ", ".join(m for m in METRIC_COLUMNS if m not in ("error", "preemptions"))
            raise SweepError(f"unknown plot metric {metric!r}; choose from: {allowed}")
    setup = ServingSetup(
        model=model,
        hw=spec,
        instance=instance,
        requests=requests,
        prompt=prompt,
        output=output,
        rate=rate,
        concurrency=concurrency,
        tp=tp,
        max_batch=max_batch,
        scheduler=scheduler,
        slo_ttft_ms=slo_ttft_ms,
        slo_tpot_ms=slo_tpot_ms,
        seed=space.seed,
    )
    # resolved(): a bad model, scheduler, length or instance fails here, before any worker starts.
    evaluator = Evaluator(setup, step_cost_factory(step_cost, setup.dtype)).resolved()
    backend: Literal["local", "ray"] = "ray" if use_ray or ray_address else "local"
    err = Console(stderr=True, soft_wrap=True)  # a long path stays one line
    for name in fields_without_effect(space, spec, step_cost, tp, instance or default_instance(spec)):
        err.print(
            f"[yellow]warning:[/] {escape(name)} does not change the {step_cost} step cost (it reads only the TensorE "
            "peak, HBM bandwidth and capacity, and prices); its rows differ only where serving differs. "
            "Use --step-cost estimate to simulate it.",
            highlight=False,
        )
    points = space.points()
    fingerprint = hashlib.sha256(repr((setup, step_cost)).encode()).hexdigest()
    log = RowLog(out / "rows.jsonl", fingerprint, fresh=fresh)
    todo = [p for p in points if point_key(p) not in log.finished]
    if len(todo) < len(points):
        err.print(f"resuming: {len(points) - len(todo)} of {len(points)} points already in {log.path}", highlight=False)
    run_sweep(
        todo,
        evaluator,
        backend=backend,
        address=ray_address,
        workers=workers,
        progress=not as_json,
        on_row=lambda i, row: log.append(todo[i], row),
    )
    rows = [log.finished[point_key(p)] for p in points]

    failed = [r for r in rows if r["error"]]
    if len(failed) == len(rows):
        raise SweepError(f"every sweep point failed; the first: {failed[0]['error']}")
    files = [write_csv(rows, out / "sweep.csv")]
    if parquet_available():
        files.append(write_parquet(rows, out / "sweep.parquet"))
    front = pareto_front(rows, x, y, minimize_x=x in LOWER_IS_BETTER, maximize_y=y not in LOWER_IS_BETTER)
    if front:
        files += plot_pareto(rows, out / "pareto", names, x, y, title=f"{model} on {spec.name}")
    front_ids = {id(r) for r in front}
    if as_json:
        payload = {
            "rows": rows,
            "pareto": [i for i, r in enumerate(rows) if id(r) in front_ids],
            "failed": len(failed),
            "backend": backend,
            "step_cost": step_cost,
            "files": [str(f) for f in files],
        }
        print(json.dumps(payload, indent=2))
        return
    _print_table(rows, names, front_ids, f"{model} on {spec.name}: {len(rows)} points ({step_cost} step cost)")
    if "rate" not in names and "concurrency" not in names:
        load = f"{rate:g} req/s" if rate is not None else f"{concurrency} clients"
        err.print(
            f"[dim]note: every point is offered the same load ({load}): output tok/s equals that load wherever a "
            "point keeps up, so compare latency, $/Mtok and J/token; sweep rate (--set rate=...) for capacity[/]",
            highlight=False,
        )
    if not front:
        err.print(f"[yellow]no point has both {x} and {y}; no Pareto plot[/]")
    for f in files:
        err.print(f"wrote {escape(str(f))}", highlight=False)
