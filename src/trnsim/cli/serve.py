"""`trnsim serve --model llama-3.1-70b --hw trn2.48xlarge --tp 64 --rate 2 --requests 200 --prompt 2048
--output 256 [--scheduler continuous|chunked|static] [--dtype bf16|fp8|fp4] [--kv-dtype bf16|fp8]
[--serving-stack auto|exact|transformers-neuronx|nxd-inference] [--json]`: simulate serving with estimated step
latencies (weights and KV cache in the given number formats, step shapes as the serving stack pads them)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer._click.exceptions import MissingParameter  # typer >= 0.20 vendors click (cli/usage_errors.py)

MAX_RECORDED_TOKENS = 50_000_000  # token times kept for --save-result's ITL (8 bytes each)


def _ms(p: dict[str, Any]) -> str:
    parts = [f"{k} {p[k]:,.1f}" for k in ("p50", "p90", "p99") if p.get(k) is not None]
    return ", ".join(parts) or "-"


def _usd(value: float | None) -> str:
    return f"${value:,.3f}" if value is not None else "-"


def stack_label(stack: dict[str, Any]) -> str:
    """A StackChoice.to_dict() in one cell: "nxd-inference (seq_len 4096)" or "exact"."""
    if stack["name"] == "exact":
        return "exact shapes" + (f" ({stack['note'].removeprefix('exact shapes: ')})" if stack.get("note") else "")
    return f"{stack['name']} (seq_len {stack['seq_len']:,}, buckets from {stack['context_buckets'][0]})"


def metrics_table(title: str, out: dict[str, Any]) -> Table:
    """The headline serving metrics of one run (a ServeResult.to_dict(), plus hw/tp) as a rich table."""
    table = Table(title=escape(title))
    table.add_column("metric")
    table.add_column("value", justify="right")
    usd, joules = out.get("usd_per_mtok"), out.get("j_per_tok")
    rows = [
        ("requests", f"{out['requests']:,} in {out['duration_s']:,.1f} s"),
        ("TTFT ms (p50, p90, p99)", _ms(out["ttft_ms"])),
        ("TPOT ms (p50, p90, p99)", _ms(out["tpot_ms"])),
        ("end-to-end ms (p50, p90, p99)", _ms(out["e2e_ms"])),
        ("output tokens/s", f"{out['throughput_tok_s']:,.1f}"),
        ("device busy", f"{out['utilization']:.0%}"),
        ("$ per million output tokens", f"${usd:,.3f}" if usd is not None else "-"),
        ("$ per million tokens (input + output)", _usd(out.get("usd_per_mtok_input_output"))),
        ("max requests in the system", f"{out.get('max_concurrency', 0):,}"),
        ("J per output token (facility)", f"{joules:,.3f}" if joules is not None else "-"),
        ("preemptions", f"{out['preemptions']:,}"),
    ]
    stack = out.get("serving_stack")
    if stack is not None:
        rows.append(("serving stack", stack_label(stack)))
    if out.get("slo_attainment") is not None:
        rows.append(("SLO attainment", f"{out['slo_attainment']:.1%}"))
    for name, value in rows:
        table.add_row(name, escape(value))
    return table


def serve_command(
    ctx: typer.Context,
    model: str | None = typer.Option(None, "--model", help="model preset (e.g. llama-3.1-70b) or a config.json path"),
    hw: str | None = typer.Option(None, "--hw", help="instance type, e.g. trn2.48xlarge or p5.48xlarge"),
    tp: int | None = typer.Option(None, "--tp", help="tensor-parallel ranks per replica (logical NeuronCores or GPUs)"),
    rate: float | None = typer.Option(None, "--rate", help="Poisson arrivals, requests/s"),
    burstiness: float | None = typer.Option(
        None, "--burstiness", help="Gamma arrivals of this shape instead (vLLM's: 1 = Poisson, < 1 burstier)"
    ),
    concurrency: int | None = typer.Option(None, "--concurrency", help="closed loop: clients each with one request"),
    requests: int = typer.Option(200, "--requests", min=1, help="requests to simulate"),
    prompt: str = typer.Option("2048", "--prompt", help="prompt tokens: N, LOW-HIGH or zipf:S:LOW-HIGH"),
    output: str = typer.Option("256", "--output", help="output tokens: N, LOW-HIGH or zipf:S:LOW-HIGH"),
    scheduler: str = typer.Option(
        "continuous", "--scheduler", help="continuous (vLLM), chunked (Sarathi), static or disaggregated"
    ),
    seed: int = typer.Option(0, "--seed", help="workload random seed"),
    weight_format: str = typer.Option(
        "bf16", "--dtype", help="weight format: bf16, fp8 or fp4 (GPUs with FP4 tensor cores); mxfp8/mxfp4 not yet"
    ),
    kv_dtype: str | None = typer.Option(None, "--kv-dtype", help="KV-cache format: bf16 or fp8 (halves KV bytes)"),
    slo_ttft_ms: float | None = typer.Option(None, "--slo-ttft-ms", help="TTFT target for SLO attainment"),
    slo_tpot_ms: float | None = typer.Option(None, "--slo-tpot-ms", help="TPOT target for SLO attainment"),
    prices: Path | None = typer.Option(None, "--prices", help="TOML overriding prices.toml entries (your quote)"),
    power_table: Path | None = typer.Option(None, "--power-table", help="TOML overriding power.toml entries"),
    percentiles: str = typer.Option("50,90,95,99", "--percentiles", help="latency percentiles, e.g. 50,99,99.9"),
    save_result: Path | None = typer.Option(
        None, "--save-result", help="write vLLM-benchmark-style metrics as JSON here (docs/serving_and_cost.md)"
    ),
    timeline: Path | None = typer.Option(
        None, "--timeline", help="write a Perfetto timeline (requests, steps, batch/queue/KV counters) here"
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    report: str | None = typer.Option(None, "--report", help="also write a self-contained HTML report here"),
    deployment: Path | None = typer.Option(
        None, "--deployment", help="TOML: several tenants on one instance's NeuronCores (docs/instances.md)"
    ),
    prefill_tp: int | None = typer.Option(
        None, "--prefill-tp", help="--scheduler disaggregated: ranks of the prefill pool (docs/serving_parallelism.md)"
    ),
    decode_tp: int | None = typer.Option(
        None, "--decode-tp", help="--scheduler disaggregated: ranks of the decode pool"
    ),
    pp: int | None = typer.Option(
        None, "--pp", help="pipeline stages per replica, each --tp ranks (docs/serving_parallelism.md)"
    ),
    serving_stack: str = typer.Option(
        "auto",
        "--serving-stack",
        help="auto (the Neuron stack AWS documents for the chip: transformers-neuronx on trn1/inf2, NxD Inference on"
        " trn2/trn3; exact on GPUs), exact (exact step shapes), transformers-neuronx or nxd-inference"
        " (NAME:sequence-parallel,qkv,mlp adds NxD Inference's deployment options; docs/serving_and_cost.md)",
    ),
    ep: int | None = typer.Option(
        None,
        "--ep",
        help="expert-parallel groups per replica of a mixture-of-experts model, each --tp ranks (default 1):"
        " attention tensor-parallel in a group, data-parallel across groups, the routed experts split over the"
        " groups, dispatch/combine all-to-all over the instance",
    ),
) -> None:
    """Simulate serving MODEL on HW: latency percentiles, tokens/s, $/Mtok and J/token."""
    from trnsim.serve.stack_choice import exact_only

    if ep is not None:
        tp = _check_ep_options(ep, tp, pp, deployment, scheduler, prefill_tp, decode_tp)
    if deployment is not None:
        exact_only(serving_stack, "--deployment")
        if weight_format.lower() not in ("bf16", "bfloat16") or kv_dtype is not None:
            from trnsim.serve.errors import ServeError

            raise ServeError("--dtype/--kv-dtype are not supported with --deployment yet (its tenants serve bf16)")
        _serve_deployment(deployment, scheduler, seed, as_json)
        return
    if scheduler.strip().lower() == "disaggregated" or prefill_tp is not None or decode_tp is not None:
        from trnsim.cli.serve_parallel import serve_disaggregated

        exact_only(serving_stack, "--scheduler disaggregated")
        if pp is not None:
            from trnsim.serve.errors import ServeError

            raise ServeError("--pp is not supported with --scheduler disaggregated yet (each pool is one tp group)")
        serve_disaggregated(
            ctx,
            model=model,
            hw=hw,
            tp=tp,
            scheduler=scheduler,
            prefill_tp=prefill_tp,
            decode_tp=decode_tp,
            workload_options={
                "rate": rate,
                "concurrency": concurrency,
                "burstiness": burstiness,
                "seed": seed,
                "requests": requests,
                "prompt": prompt,
                "output": output,
            },
            weight_format=weight_format,
            kv_dtype=kv_dtype,
            slo=(slo_ttft_ms, slo_tpot_ms),
            tables=(prices, power_table),
            unsupported={"--save-result": save_result, "--timeline": timeline, "--report": report},
            as_json=as_json,
        )
        return
    from trnsim.serve import SLO, make_workload, simulate
    from trnsim.serve.benchmark_metrics import SCHEMA, benchmark_metrics, parse_percentiles
    from trnsim.serve.errors import ServeError
    from trnsim.serve.setup import grid_bounds, serving_setup
    from trnsim.serve.stack_choice import choose_serving_stack, stack_grid_bounds
    from trnsim.serve.steady_state import measure_steady_state

    for option, value in (("--model", model), ("--hw", hw), ("--tp", tp)):
        if value is None:  # required unless --deployment: the usage error typer gives for a missing option
            raise MissingParameter(ctx=ctx, param_hint=f"'{option}'", param_type="option")
    assert model is not None and hw is not None and tp is not None
    if (rate is None) == (concurrency is None):
        raise ServeError("give exactly one of --rate (requests/s) or --concurrency (clients)")
    if burstiness is not None and not (burstiness > 0 and burstiness < float("inf")):
        raise ServeError(f"--burstiness must be a finite number > 0 (1 = Poisson), got {burstiness}")
    cv = None if burstiness is None else burstiness**-0.5  # Gamma shape k has coefficient of variation 1/sqrt(k)
    wanted = parse_percentiles(percentiles)
    work = make_workload(requests, rate=rate, concurrency=concurrency, cv=cv, prompt=prompt, output=output, seed=seed)
    # Inter-token latencies need every token's time: kept when asked for and bounded (8 bytes a token).
    keep_tokens = save_result is not None and requests * work.max_request_tokens <= MAX_RECORDED_TOKENS
    slo = SLO(slo_ttft_ms, slo_tpot_ms) if slo_ttft_ms is not None or slo_tpot_ms is not None else None
    if ep is not None and ep > 1:  # expert-parallel ranks, attention data-parallel (serve/expert_parallel_setup.py)
        from trnsim.serve.expert_parallel_setup import ep_serving_setup

        choice = exact_only(serving_stack, "--ep")
        setup = ep_serving_setup(
            model,
            hw,
            ep,
            tp=tp,
            weight_format=weight_format,
            kv_dtype=kv_dtype,
            bounds=grid_bounds(work, scheduler),
            progress=not as_json,
            prices=prices,
            power_table=power_table,
        )
    elif pp is not None:  # pipeline stages of tp ranks each (docs/serving_parallelism.md)
        from trnsim.serve.pipeline_setup import pipeline_setup

        choice = exact_only(serving_stack, "--pp")
        setup = pipeline_setup(
            model,
            hw,
            tp,
            pp,
            weight_format=weight_format,
            kv_dtype=kv_dtype,
            bounds=grid_bounds(work, scheduler),
            progress=not as_json,
            prices=prices,
            power_table=power_table,
        )
    else:
        from trnsim.cost import load_prices
        from trnsim.serve.setup import accelerator_target

        price_table = load_prices(prices)
        choice = choose_serving_stack(serving_stack, accelerator_target(hw, price_table), work, scheduler, model)
        setup = serving_setup(
            model,
            hw,
            tp,
            weight_format=weight_format,
            kv_dtype=kv_dtype,
            bounds=stack_grid_bounds(grid_bounds(work, scheduler), work, scheduler, choice.stack),
            progress=not as_json,
            prices=price_table,
            power_table=power_table,
            stack=choice.stack,
        )
    layout = f"tp={tp} x ep={ep}" if ep and ep > 1 and tp > 1 else f"ep={ep}" if ep and ep > 1 else f"tp={tp}"
    status = Console(stderr=True).status(f"simulating {requests} requests on {hw} ({layout}) ...")
    with status if not as_json else contextlib.nullcontext():
        result = simulate(
            setup.model,
            setup.replica,
            work,
            scheduler,
            slo=slo,
            record_token_times=keep_tokens,
            record_steps=timeline is not None,
        )
    if timeline is not None:
        from trnsim.serve.serving_trace import write_serving_trace

        Console(stderr=True).print(f"timeline: {write_serving_trace(result, timeline)}", highlight=False)
    out = result.to_dict() | {
        "hw": hw,
        "tp": tp,
        "pp": pp or 1,
        "ep": ep or 1,
        "target": setup.target,
        "rate_req_s": rate,
        "concurrency": concurrency,
        "burstiness": burstiness,
        "dtype": weight_format,
        "kv_dtype": kv_dtype or "bf16",
        "weight_bytes": setup.model.weight_bytes,
        "kv_bytes_per_token": setup.model.kv_bytes_per_token,
        "serving_stack": choice.to_dict(),
    }
    if concurrency is None and requests >= 2:
        out["steady_state"] = measure_steady_state(result, slo).to_dict()
    if save_result is not None:
        saved: dict[str, Any] = {"schema": SCHEMA, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        saved |= {k: out[k] for k in ("model", "hw", "tp", "target", "scheduler", "rate_req_s", "concurrency")}
        saved |= {"burstiness": burstiness, "requests": requests, "prompt": prompt, "output": output, "seed": seed}
        saved |= benchmark_metrics(result, wanted)
        save_result.write_text(json.dumps(saved, indent=2))
    if report is not None:
        from trnsim.report.html import Report

        path = Report(f"{out['model']} on {hw}, tp={tp}").add_serving(f"{hw} tp={tp}", result).write(report)
        Console(stderr=True).print(f"report: {path}", highlight=False)
    if as_json:
        print(json.dumps(out, indent=2))
        return
    stages = f", pp={pp}" if pp is not None else ""
    Console().print(metrics_table(f"{out['model']} on {hw}, {layout}{stages} ({result.scheduler})", out))


def _check_ep_options(
    ep: int, tp: int | None, pp: int | None, deployment: Any, scheduler: str, prefill_tp: Any, decode_tp: Any
) -> int:
    """The tp of an --ep run (tp ranks per expert-parallel group, default 1), or the ServeError naming the option
    that expert parallelism does not combine with: pipeline stages, tenants and disaggregated pools."""
    from trnsim.serve.errors import ServeError

    if ep < 1:
        raise ServeError(f"--ep must be >= 1 (expert-parallel ranks per replica), got {ep}")
    others = {"--pp": pp, "--deployment": deployment, "--prefill-tp": prefill_tp, "--decode-tp": decode_tp}
    if scheduler.strip().lower() == "disaggregated":
        others["--scheduler disaggregated"] = True
    given = [name for name, value in others.items() if value is not None]
    if given and ep > 1:
        raise ServeError(f"--ep {ep} does not combine with {', '.join(given)} yet; serve one expert-parallel replica")
    return 1 if tp is None else tp


def _serve_deployment(path: Path, scheduler: str, seed: int, as_json: bool) -> None:
    """`--deployment FILE`: every tenant's serve metrics, side by side (`--json`: {"tenants": {NAME: ...}})."""
    from trnsim.serve.deployment import load_deployment, run_deployment
    from trnsim.serve.deployment_gpu import GpuDeployment

    dep = load_deployment(path)
    tenants = run_deployment(dep, scheduler, seed, progress=not as_json)
    lnc = None if isinstance(dep, GpuDeployment) else dep.lnc
    if as_json:
        print(json.dumps({"instance": dep.instance, "lnc": lnc, "tenants": tenants}, indent=2))
        return
    for name, out in tenants.items():
        if lnc is None:  # GPUs: whole or a MIG slice, isolated
            title = f"{name}: {out['model']} on {dep.instance} {out['gpus']} (tp={out['tp']})"
            Console().print(metrics_table(title, out))
            continue
        title = f"{name}: {out['model']} on {dep.instance} cores {out['cores']} (LNC={lnc}, tp={out['tp']})"
        Console().print(metrics_table(title, out))
        Console().print(
            f"  HBM stacks shared with: {', '.join(out['hbm_stack_neighbours']) or 'none'}; DMA bandwidth "
            f"x{out['hbm_bandwidth_factor']:.3f} under their load. NeuronLink shared with: "
            f"{', '.join(out['link_neighbours']) or 'none'}; link bandwidth x{out['link_bandwidth_factor']:.3f}",
            highlight=False,
        )
