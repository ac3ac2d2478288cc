"""`trnsim serve --scheduler disaggregated --prefill-tp P --decode-tp D` (a prefill pool and a decode pool on one
instance, the KV cache handed over its links) and the checks that keep these options apart from the rest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from typer._click.exceptions import MissingParameter  # typer >= 0.20 vendors click (cli/usage_errors.py)

from trnsim.serve.errors import ServeError


def serve_disaggregated(
    ctx: typer.Context,
    *,
    model: str | None,
    hw: str | None,
    tp: int | None,
    scheduler: str,
    prefill_tp: int | None,
    decode_tp: int | None,
    workload_options: dict[str, Any],
    weight_format: str,
    kv_dtype: str | None,
    slo: tuple[float | None, float | None],
    tables: tuple[Path | None, Path | None],
    unsupported: dict[str, Any],
    as_json: bool,
) -> None:
    """Run the disaggregated scheduler and print its metrics (the serve table, plus the KV hand-off)."""
    from trnsim.cli.serve import metrics_table
    from trnsim.serve import SLO, make_workload
    from trnsim.serve.disaggregated import simulate_disaggregated
    from trnsim.serve.disaggregated_setup import disaggregated_setup

    if scheduler.strip().lower() != "disaggregated":
        raise ServeError("--prefill-tp/--decode-tp size the pools of --scheduler disaggregated; add that option")
    if tp is not None:
        raise ServeError("--scheduler disaggregated sizes its pools with --prefill-tp and --decode-tp, not --tp")
    for option, value in (("--model", model), ("--hw", hw), ("--prefill-tp", prefill_tp), ("--decode-tp", decode_tp)):
        if value is None:
            raise MissingParameter(ctx=ctx, param_hint=f"'{option}'", param_type="option")
    given = [name for name, value in unsupported.items() if value is not None]
    if given:
        raise ServeError(f"{', '.join(given)} not supported with --scheduler disaggregated yet")
    assert model is not None and hw is not None and prefill_tp is not None and decode_tp is not None
    opts = dict(workload_options)
    rate, concurrency, burstiness = opts.pop("rate"), opts.pop("concurrency"), opts.pop("burstiness")
    if (rate is None) == (concurrency is None):
        raise ServeError("give exactly one of --rate (requests/s) or --concurrency (clients)")
    if burstiness is not None and not (burstiness > 0 and burstiness < float("inf")):
        raise ServeError(f"--burstiness must be a finite number > 0 (1 = Poisson), got {burstiness}")
    cv = None if burstiness is None else burstiness**-0.5
    work = make_workload(
        opts["requests"],
        rate=rate,
        concurrency=concurrency,
        cv=cv,
        prompt=opts["prompt"],
        output=opts["output"],
        seed=opts["seed"],
    )
    setup = disaggregated_setup(
        model,
        hw,
        prefill_tp,
        decode_tp,
        work,
        weight_format=weight_format,
        kv_dtype=kv_dtype,
        progress=not as_json,
        prices=tables[0],
        power_table=tables[1],
    )
    goal = SLO(*slo) if slo[0] is not None or slo[1] is not None else None
    result = simulate_disaggregated(
        setup.prefill.model,
        setup.prefill.replica,
        setup.decode.replica,
        work,
        setup.link,
        decode_model=setup.decode.model,
        slo=goal,
    )
    out = result.to_dict() | {
        "hw": hw,
        "prefill_tp": prefill_tp,
        "decode_tp": decode_tp,
        "target": setup.prefill.target,
        "rate_req_s": rate,
        "concurrency": concurrency,
        "burstiness": burstiness,
        "dtype": weight_format,
        "kv_dtype": kv_dtype or "bf16",
        "kv_link_gb_s": setup.link.bytes_per_s / 1e9,
        "kv_link_latency_us": setup.link.latency_s * 1e6,
    }
    if concurrency is None and opts["requests"] >= 2:  # as `trnsim serve` reports for the other schedulers
        from trnsim.serve.steady_state import measure_steady_state

        out["steady_state"] = measure_steady_state(result, goal).to_dict()
    if as_json:
        print(json.dumps(out, indent=2))
        return
    title = f"{out['model']} on {hw}, prefill tp={prefill_tp} + decode tp={decode_tp} (disaggregated)"
    Console().print(metrics_table(title, out))
    moved = out["kv_transfer"]
    Console().print(
        f"KV hand-off: {moved['bytes_total'] / 2**30:,.2f} GiB over {out['kv_link_gb_s']:,.0f} GB/s "
        f"(+{out['kv_link_latency_us']:.1f} us each), {moved['ms_mean']:.2f} ms mean per request, "
        f"{moved['wait_ms_mean']:.2f} ms mean wait for the decode pool; busy: prefill "
        f"{out['pool_busy']['prefill']:.1f} s, decode {out['pool_busy']['decode']:.1f} s",
        highlight=False,
    )
