"""trnsim's serving predictions against AWS's published Neuron serving measurements (issue 13, "Fidelity").

Run: .venv/bin/python -W ignore::UserWarning bench/serving_fidelity.py [--data FILE] [--only trn1|MODEL]
     [--mode exact,stack,cli,cli-exact | both | all] [--json out.json]

For each published row (model, instance, tp, batch, prompt and output length, weight storage) it serves `batch`
closed-loop clients through trnsim's serving API: the step cost is the compiler's estimate on the simulated
chip (`estimated_step_cost`), the scheduler static batching of `batch` sequences (the published stacks run a
fixed compiled batch: transformers-neuronx on trn1/inf2; the trn2 rows are batch 1), two batches of requests.
It prints published vs trnsim TTFT p50 and TPOT p50, the relative error of each, and the median |error| per
instance kind and overall. Rows trnsim cannot run are listed with the reason.

Each row runs in two variants (--mode): "exact", the shapes as given on PyTorch's weight layout; and "stack",
with the Neuron serving stack's behaviour (serve/serving_stack.py: the sequence-length buckets it compiles and
pads to, transformers-neuronx's unfused context attention and token-by-token prompt leftovers, NxD Inference's
sequence-parallel context encoding and K-major QKV/MLP kernel weights where the deployment enabled them;
serve/weight_layout.py: decode weights in the layout its kernels stream best). Two more (--mode cli, cli-exact)
run each row through `trnsim serve` itself, the public path a user takes, with `--serving-stack auto` (the stack's
documented defaults: no per-row buckets, sequence parallelism or kernel weights; the sequence length from the
workload) or `exact`; there the CLI refuses rows past the model's context, as it would for a user.
The published numbers are only compared against, never used to set a constant.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# bench/kernels.py would shadow the `kernels` package transformers imports when this runs as a script
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

DATA = Path(__file__).parent / "data" / "neuron_serving_published.csv"
BATCHES_PER_ROW = 2  # requests = batches x batch: every request in a full static batch
# The grid's new-tokens axis stops here; a batch's wider prefill extrapolates linearly along new tokens (StepLatencyGrid
# warns). Past it, a static batch's prefill is several prompt-long sequences, whose dense work and attention
# pairs grow in proportion to their number, so the extrapolation holds; it saves estimates of 32k-64k tokens.
PREFILL_GRID_CAP = 16384
# exact / stack: the bench's own setup (one grid per group; "stack" with each row's published deployment: its
# buckets, sequence parallelism and kernel weights). cli / cli-exact: each row through `trnsim serve` itself, as a
# user runs it, with `--serving-stack auto` (the stack's documented defaults, the sequence length from the
# workload) or `--serving-stack exact`.
# cli-deployment: through `trnsim serve --serving-stack NAME[:options]` with the row's stack and NxD Inference
# deployment options (sequence parallelism, QKV/MLP kernels), the stack's default buckets.
MODES = ("exact", "stack", "cli", "cli-exact", "cli-deployment")
MODE_SETS = {"both": ("exact", "stack"), "all": MODES}


@dataclass(frozen=True)
class PublishedRow:
    """One published measurement (bench/data/neuron_serving_published.csv)."""

    model: str
    model_published: str
    instance: str
    tp: int
    batch: int
    seq_len: int
    prompt: int
    output: int
    ttft_ms: float
    tpot_ms: float
    weight_storage: str
    stack: str
    context_buckets: str
    token_buckets: str
    source: str
    sequence_parallel: bool = False
    kernel_weights: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """Instance family: trn1, inf2, trn2."""
        return self.instance.split(".")[0]

    @property
    def label(self) -> str:
        return f"{self.model} {self.kind} tp={self.tp} b={self.batch} {self.prompt}/{self.output}"


@dataclass(frozen=True)
class RowResult:
    """trnsim's prediction for a row, or why it could not run (`refused`)."""

    row: PublishedRow
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    refused: str | None = None
    seconds: float = 0.0

    @property
    def ttft_error(self) -> float | None:
        return None if self.ttft_ms is None else relative_error(self.ttft_ms, self.row.ttft_ms)

    @property
    def tpot_error(self) -> float | None:
        return None if self.tpot_ms is None else relative_error(self.tpot_ms, self.row.tpot_ms)


def load_rows(path: Path = DATA) -> list[PublishedRow]:
    """The published rows of the data file (lines starting with # are its provenance header)."""
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    rows = []
    for r in csv.DictReader(lines):
        rows.append(
            PublishedRow(
                model=r["model"],
                model_published=r["model_published"],
                instance=r["instance"],
                tp=int(r["tp"]),
                batch=int(r["batch"]),
                seq_len=int(r["seq_len"]),
                prompt=int(r["input"]),
                output=int(r["output"]),
                ttft_ms=float(r["ttft_p50_ms"]),
                tpot_ms=float(r["tpot_p50_ms"]),
                weight_storage=r["weight_storage"],
                stack=r["stack"],
                context_buckets=r["context_buckets"],
                token_buckets=r["token_buckets"],
                source=r["source"],
                sequence_parallel=r.get("sequence_parallel", "no") == "yes",
                kernel_weights=tuple((r.get("kernel_weights") or "").split()),
            )
        )
    return rows


def relative_error(predicted: float, published: float) -> float:
    """(predicted - published) / published: negative when trnsim is faster than the hardware."""
    return (predicted - published) / published


def summarize(results: list[RowResult]) -> dict[str, dict[str, Any]]:
    """Median |relative error| of TTFT, TPOT and both pooled, per instance kind and overall ("all"), with the
    number of rows run and refused. Kinds with no row that ran report None medians."""
    kinds = sorted({r.row.kind for r in results})
    summary: dict[str, dict[str, Any]] = {}
    for kind in [*kinds, "all"]:
        chosen = [r for r in results if kind in ("all", r.row.kind)]
        ran = [r for r in chosen if r.refused is None]
        ttft = [abs(e) for r in ran if (e := r.ttft_error) is not None]
        tpot = [abs(e) for r in ran if (e := r.tpot_error) is not None]
        summary[kind] = {
            "rows": len(ran),
            "refused": len(chosen) - len(ran),
            "ttft_median_abs_error": statistics.median(ttft) if ttft else None,
            "tpot_median_abs_error": statistics.median(tpot) if tpot else None,
            "median_abs_error": statistics.median(ttft + tpot) if ttft + tpot else None,
        }
    return summary


def format_table(results: list[RowResult]) -> str:
    """The per-row table, then the refused rows with their reason, then the summary."""

    def pct(x: float | None) -> str:
        return "    -" if x is None else f"{x:+6.0%}"

    lines = [
        f"{'row':52s} {'TTFT pub':>9s} {'trnsim':>9s} {'err':>6s}  {'TPOT pub':>8s} {'trnsim':>7s} {'err':>6s}",
    ]
    for r in results:
        if r.refused is not None:
            continue
        assert r.ttft_ms is not None and r.tpot_ms is not None
        lines.append(
            f"{r.row.label:52s} {r.row.ttft_ms:9.1f} {r.ttft_ms:9.1f} {pct(r.ttft_error)}  "
            f"{r.row.tpot_ms:8.2f} {r.tpot_ms:7.2f} {pct(r.tpot_error)}"
        )
    refused = [r for r in results if r.refused is not None]
    if refused:
        lines.append("")
        lines.append("not run:")
        lines.extend(f"  {r.row.label}: {r.refused}" for r in refused)
    lines.append("")
    lines.append(f"{'median |error|':14s} {'rows':>5s} {'refused':>8s} {'TTFT':>6s} {'TPOT':>6s} {'both':>6s}")
    for kind, s in summarize(results).items():

        def cell(x: float | None) -> str:
            return "     -" if x is None else f"{x:6.1%}"

        lines.append(
            f"{kind:14s} {s['rows']:5d} {s['refused']:8d} {cell(s['ttft_median_abs_error'])} "
            f"{cell(s['tpot_median_abs_error'])} {cell(s['median_abs_error'])}"
        )
    return "\n".join(lines)


# -- running trnsim ----------------------------------------------------------------------------------------------


def weight_format(row: PublishedRow) -> str:
    """The serving format whose timing matches the row's weight storage. transformers-neuronx's int8 weight
    storage keeps 1-byte weights in HBM and computes in bf16 (its developer guide, "int8 weight storage
    support"); on NeuronCore-v2 trnsim's fp8 format is exactly that: 1-byte weights, matmuls at the bf16 rate."""
    if row.weight_storage == "bf16":
        return "bf16"
    if row.weight_storage == "int8" and row.kind in ("trn1", "inf2"):
        return "fp8"
    raise ValueError(f"no trnsim format for {row.weight_storage} weight storage on {row.kind}")


def group_key(row: PublishedRow) -> tuple[Any, ...]:
    """Rows that share one replica setup (and so one step-latency grid)."""
    return (
        row.model,
        row.instance,
        row.tp,
        row.weight_storage,
        row.seq_len,
        row.context_buckets,
        row.token_buckets,
        row.sequence_parallel,
        row.kernel_weights,
    )


def group_bounds(rows: list[PublishedRow]) -> Any:
    """The step shapes every row of a group can produce, with and without the stack's padding: the grid is built
    once for all of them. A static batch's prefill is batch x the prompt (padded to its context bucket)."""
    from trnsim.serve.setup import GridBounds

    def prefill_tokens(row: PublishedRow) -> int:
        padded = _stack(row).padded_step(row.batch, row.batch * row.prompt, row.prompt)[1]
        return min(max(padded, row.batch * row.prompt), max(PREFILL_GRID_CAP, row.prompt))

    return GridBounds(
        max_batch=max(2, *(r.batch for r in rows)),
        max_context=max(2, *(max(r.prompt + r.output, r.seq_len) for r in rows)),
        max_new_tokens=max(2, *(prefill_tokens(r) for r in rows)),
    )


def cli_args(row: PublishedRow, serving_stack: str) -> list[str]:
    """`trnsim serve` arguments that serve the row as the bench does: `batch` closed-loop clients, two static
    batches of requests."""
    return [
        "serve",
        *("--model", row.model, "--hw", row.instance, "--tp", str(row.tp)),
        *("--concurrency", str(row.batch), "--requests", str(BATCHES_PER_ROW * row.batch)),
        *("--prompt", str(row.prompt), "--output", str(row.output), "--scheduler", "static"),
        *("--dtype", weight_format(row), "--serving-stack", serving_stack, "--json"),
    ]


def deployment_stack(row: PublishedRow) -> str:
    """The row's stack as `--serving-stack NAME[:options]` (its sequence parallelism and kernel weights)."""
    name = _stack(row).name
    options = (["sequence-parallel"] if row.sequence_parallel else []) + list(row.kernel_weights)
    return name + (":" + ",".join(options) if options else "")


def run_cli(row: PublishedRow, serving_stack: str) -> RowResult:
    """The row through `trnsim serve` (the typer app, in process): TTFT and TPOT p50 from its JSON."""
    from typer.testing import CliRunner

    from trnsim.cli import app

    start = time.perf_counter()
    result = CliRunner().invoke(app, cli_args(row, serving_stack))
    seconds = time.perf_counter() - start
    if result.exit_code != 0:
        why = str(result.exception) if result.exception is not None else result.output.strip()
        return RowResult(row, refused=why.splitlines()[0] if why else f"exit code {result.exit_code}", seconds=seconds)
    out = json.loads(result.stdout)
    return RowResult(row, out["ttft_ms"]["p50"], out["tpot_ms"]["p50"], seconds=seconds)


def run_group(rows: list[PublishedRow], modes: tuple[str, ...] = MODES) -> dict[str, list[RowResult]]:
    """Serve each row's workload at exact shapes on PyTorch's weight layout ("exact") and with the Neuron serving
    stack ("stack": its buckets and weight layout), one replica setup per mode for the whole group, or through
    `trnsim serve` row by row ("cli", "cli-exact"), and read TTFT p50 and TPOT p50 (vLLM's definition)."""
    from trnsim.errors import TrnsimError
    from trnsim.serve import ClosedLoop, Fixed, StaticBatching, Workload, simulate
    from trnsim.serve.setup import serving_setup

    first = rows[0]
    results: dict[str, list[RowResult]] = {}
    for mode in modes:
        if mode.startswith("cli"):
            choice = {"cli": "auto", "cli-exact": "exact"}
            results[mode] = [run_cli(row, choice.get(mode) or deployment_stack(row)) for row in rows]
            continue
        start = time.perf_counter()
        try:
            setup = serving_setup(
                first.model,
                first.instance,
                first.tp,
                weight_format=weight_format(first),
                bounds=group_bounds(rows),
                stack=_stack(first) if mode == "stack" else None,
                check_lengths=False,  # AWS served some rows past the preset's trained context (Llama-2 at 8192)
            )
        except (TrnsimError, ValueError) as exc:
            results[mode] = [RowResult(row, refused=str(exc), seconds=time.perf_counter() - start) for row in rows]
            continue
        results[mode] = []
        for row in rows:
            work = Workload(
                BATCHES_PER_ROW * row.batch, ClosedLoop(row.batch), prompt=Fixed(row.prompt), output=Fixed(row.output)
            )
            try:
                m = simulate(setup.model, setup.replica, work, StaticBatching(max_batch=row.batch)).metrics
            except TrnsimError as exc:
                results[mode].append(RowResult(row, refused=str(exc), seconds=time.perf_counter() - start))
                continue
            results[mode].append(RowResult(row, m.ttft_ms.p50, m.tpot_ms.p50, seconds=time.perf_counter() - start))
            start = time.perf_counter()
    return results


def _stack(row: PublishedRow) -> Any:
    from trnsim.serve.serving_stack import stack_for

    return stack_for(
        row.kind,
        row.seq_len,
        row.context_buckets,
        row.token_buckets,
        sequence_parallel=row.sequence_parallel,
        kernel_weights=row.kernel_weights,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--only", help="instance kind (trn1, inf2, trn2) or model preset to run alone")
    parser.add_argument("--json", type=Path, help="write the rows and the summaries as JSON")
    parser.add_argument(
        "--mode",
        default="both",
        help=f"trnsim variant(s), comma-separated: {', '.join(MODES)}; both = exact,stack; all = every one",
    )
    args = parser.parse_args(argv)
    modes = tuple(m for part in args.mode.split(",") for m in MODE_SETS.get(part.strip(), (part.strip(),)))
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown --mode {', '.join(unknown)}; use {', '.join(MODES)}, both or all")
    rows = [r for r in load_rows(args.data) if args.only in (None, r.kind, r.model)]
    groups: dict[tuple[Any, ...], list[PublishedRow]] = {}
    for row in rows:
        groups.setdefault(group_key(row), []).append(row)
    by_row: dict[str, dict[int, RowResult]] = {mode: {} for mode in modes}
    for members in groups.values():
        for mode, results in run_group(members, modes).items():
            for res in results:
                print(f"{mode} {res.row.label}: {res.seconds:.1f} s", file=sys.stderr, flush=True)
                by_row[mode][id(res.row)] = res
    payload: dict[str, Any] = {}
    titles = {
        "exact": "exact shapes, PyTorch's weight layout",
        "stack": "with the Neuron serving stack as each row's deployment configured it",
        "cli": "through `trnsim serve --serving-stack auto` (the CLI's default)",
        "cli-exact": "through `trnsim serve --serving-stack exact`",
        "cli-deployment": "through `trnsim serve --serving-stack NAME[:options]` with the row's stack and options",
    }
    for mode in modes:
        title = titles[mode]
        results = [by_row[mode][id(row)] for row in rows]  # in the data file's order
        print(f"\n== trnsim {title}\n")
        print(format_table(results))
        payload[mode] = {
            "rows": [
                {**asdict(r.row), "trnsim_ttft_ms": r.ttft_ms, "trnsim_tpot_ms": r.tpot_ms, "refused": r.refused}
                for r in results
            ],
            "summary": summarize(results),
        }
    if args.json is not None:
        args.json.write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
