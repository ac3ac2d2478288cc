"""Compare serving one model on several instance kinds under one SLO: capacity, latency, $/Mtok, J/token.

    cmp = compare_hardware("llama-3.1-70b", ["trn2.48xlarge:tp=64", "p5.48xlarge:tp=8"], SLO(2000, 100),
                           requests=200, prompt="2048", output="256")
    print(cmp.to_dict()["cost_ratio"])

For each hardware: without a fixed load, the highest Poisson arrival rate sustained in steady state at which
`goodput_fraction` of the requests meet the SLO (`find_max_rate`: warm-up, measurement window, saturation
check; `requests` is only its smallest run) and the metrics at that rate, with the search's confidence;
with a rate or a concurrency, the metrics at that load. Then, if `curve_fractions` are given (`trnsim
compare` passes load_curve.DEFAULT_FRACTIONS), a latency-vs-load curve per side at those fractions of that
rate; and each side's $/Mtok relative to the first side's that met the SLO. A hardware on which no rate
meets the SLO is listed in `unmet`; when none does, SloUnreachableError says why for each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trnsim.cost import load_power, load_prices
from trnsim.cost.prices import PriceTable
from trnsim.serve.errors import ServeError, SloUnreachableError
from trnsim.serve.load_curve import load_curve
from trnsim.serve.metrics import SLO
from trnsim.serve.options import make_workload
from trnsim.serve.rate_search import RateSearch, find_max_rate
from trnsim.serve.result import ServeResult
from trnsim.serve.setup import (
    GridBounds,
    HwChoice,
    ServingSetup,
    accelerator_target,
    grid_bounds,
    parse_hw,
    serving_setup,
)
from trnsim.serve.simulate import simulate
from trnsim.serve.stack_choice import DEFAULT_SERVING_STACK, StackChoice, choose_serving_stack, stack_grid_bounds
from trnsim.serve.workload import Workload

DEFAULT_START_RATE = 1.0  # req/s: where the rate search starts (it doubles or halves from here)
SEARCH_BOUNDS_REQUESTS = 4096  # requests drawn to size a rate search's step grid (its runs can be this long)


@dataclass(frozen=True)
class SideResult:
    """One hardware's outcome: its setup, the load it was measured at, and the simulation there."""

    hw: str
    target: str
    tp: int
    rate_req_s: float | None  # the max rate under the SLO, or the given rate; None for a fixed concurrency
    searched: bool  # rate_req_s came from find_max_rate
    setup: ServingSetup = field(repr=False)
    result: ServeResult = field(repr=False)
    capacity: dict[str, Any] | None = None  # the search's confidence (RateSearch.confidence), when searched
    stack: StackChoice | None = None  # the serving stack its steps were priced with (None: not recorded)

    def to_dict(self) -> dict[str, Any]:
        metrics = self.result.to_dict()
        return {
            "hw": self.hw,
            "target": self.target,
            "tp": self.tp,
            "rate_req_s": self.rate_req_s,
            "rate_from_search": self.searched,
            "replicas_per_instance": self.setup.replicas_per_instance,
            "instances_per_replica": self.setup.instances_per_replica,
            "weight_bytes": self.setup.model.weight_bytes,  # per replica, in the served number format (--dtype)
            "kv_bytes_per_token": self.setup.model.kv_bytes_per_token,  # --kv-dtype
            "price_per_replica_hour": self.setup.replica.price_per_hour,
            "power_per_replica_w": self.setup.replica.power_w,
            **metrics,
            "capacity": self.capacity,
            "serving_stack": None if self.stack is None else self.stack.to_dict(),
        }


@dataclass(frozen=True)
class Comparison:
    model: str
    slo: SLO
    sides: list[SideResult]
    unmet: dict[str, str] = field(default_factory=dict)  # hardware -> why no rate meets the SLO there
    curve: list[dict[str, Any]] = field(default_factory=list)  # latency vs load, every side (load_curve)

    @property
    def cost_ratio(self) -> dict[str, float | None]:
        """Each side's $/Mtok divided by the first side's (None where a price is unknown)."""
        base = self.sides[0].result.metrics.usd_per_mtok
        out: dict[str, float | None] = {}
        for side in self.sides:
            usd = side.result.metrics.usd_per_mtok
            out[side.hw] = usd / base if usd is not None and base else None
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "slo": {"ttft_ms": self.slo.ttft_ms, "tpot_ms": self.slo.tpot_ms},
            "sides": [s.to_dict() for s in self.sides],
            "cost_ratio": self.cost_ratio,
            "slo_unmet": self.unmet,
            "load_curve": self.curve,
        }


def _search_probe(requests: int, prompt: str | int, output: str | int, seed: int) -> Workload:
    return make_workload(
        max(requests, SEARCH_BOUNDS_REQUESTS), rate=DEFAULT_START_RATE, prompt=prompt, output=output, seed=seed
    )


def search_bounds(
    requests: int, prompt: str | int, output: str | int, seed: int, scheduler: str = "continuous"
) -> GridBounds:
    """The step shapes a rate search can produce: it sizes its own runs, so the grid spans the scheduler's
    whole batch (SEARCH_BOUNDS_REQUESTS requests drawn, or the caller's count if larger)."""
    return grid_bounds(_search_probe(requests, prompt, output, seed), scheduler)


def search_setup(
    model: str,
    instance: str,
    tp: int,
    requests: int,
    prompt: str | int,
    output: str | int,
    seed: int,
    scheduler: str = "continuous",
    serving_stack: str = DEFAULT_SERVING_STACK,
    **setup_options: Any,
) -> tuple[ServingSetup, StackChoice]:
    """serving_setup for a rate search on `instance` (as `trnsim plan` sizes a replica): the step grid spans what
    the search's runs can produce (search_bounds), padded as the chosen serving stack pads them. setup_options:
    serving_setup's keyword arguments (prices, progress, weight_format, ...)."""
    probe = _search_probe(requests, prompt, output, seed)
    prices = setup_options.get("prices")
    table = prices if isinstance(prices, PriceTable) else load_prices(prices)
    choice = choose_serving_stack(serving_stack, accelerator_target(instance, table), probe, scheduler, model)
    bounds = stack_grid_bounds(grid_bounds(probe, scheduler), probe, scheduler, choice.stack)
    setup_options["prices"] = table
    return serving_setup(model, instance, tp, bounds=bounds, stack=choice.stack, **setup_options), choice


def max_rate_under_slo(
    setup: ServingSetup, work: Workload, slo: SLO, scheduler: str = "continuous", goodput_fraction: float = 0.9
) -> RateSearch:
    """find_max_rate for one setup (its runs sized by the search; work.num_requests is the smallest)."""
    return find_max_rate(setup.model, setup.replica, work, slo, scheduler, goodput_fraction=goodput_fraction)


def compare_hardware(
    model: str,
    hardware: Sequence[str | HwChoice],
    slo: SLO,
    *,
    requests: int = 200,
    prompt: str | int = 2048,
    output: str | int = 256,
    rate: float | None = None,
    concurrency: int | None = None,
    scheduler: str = "continuous",
    goodput_fraction: float = 0.9,
    seed: int = 0,
    dtype: str = "bfloat16",
    weight_format: str = "bf16",
    kv_dtype: str | None = None,
    progress: bool = False,
    on_side: Callable[[str], None] | None = None,
    prices: str | Path | None = None,
    power_table: str | Path | None = None,
    curve_fractions: Sequence[float] = (),
    serving_stack: str = DEFAULT_SERVING_STACK,
) -> Comparison:
    """Serve `model` on each hardware ("INSTANCE:tp=N") under `slo`; see the module docstring.

    weight_format / kv_dtype: `--dtype` / `--kv-dtype` on every side (serving_setup); a GPU side prices the weight
    GEMMs at its FP8/FP4 tensor-core peak, a Trainium side at TensorE's fp8 rate.
    serving_stack: `--serving-stack` on every side (serve/stack_choice.py): "auto" prices each Neuron side with the
    stack AWS documents for it (its buckets and weight layouts) and each GPU side at exact shapes."""
    if not hardware:
        raise ServeError("compare needs at least one hardware (e.g. trn2.48xlarge:tp=64)")
    choices = [h if isinstance(h, HwChoice) else parse_hw(h) for h in hardware]
    for c in choices:
        if c.tp is None:
            raise ServeError(f"give tp for {c.instance} as {c.instance}:tp=N (ranks per replica)")
    price_table, power = load_prices(prices), load_power(power_table)  # a bad file fails before any estimate
    # Set every side up first: an impossible one fails before any long simulation. A rate search sizes its
    # own runs (more requests than asked for), so its grid spans the scheduler's whole batch.
    if rate is None and concurrency is None:
        bounds = search_bounds(requests, prompt, output, seed, scheduler)
        probe = _search_probe(requests, prompt, output, seed)
    else:
        probe = make_workload(requests, rate=rate, concurrency=concurrency, prompt=prompt, output=output, seed=seed)
        bounds = grid_bounds(probe, scheduler)
    setups, stacks = [], []
    for c in choices:
        assert c.tp is not None
        stack = choose_serving_stack(
            serving_stack, accelerator_target(c.instance, price_table), probe, scheduler, model
        )
        if on_side is not None:
            on_side(f"step latencies for {c}")
        setups.append(
            serving_setup(
                model,
                c.instance,
                c.tp,
                dtype=dtype,
                weight_format=weight_format,
                kv_dtype=kv_dtype,
                bounds=stack_grid_bounds(bounds, probe, scheduler, stack.stack),
                progress=progress,
                prices=price_table,
                power_table=power,
                stack=stack.stack,
            )
        )
        stacks.append(stack)
    sides: list[SideResult] = []
    failures: dict[str, str] = {}
    for c, setup, stack in zip(choices, setups, stacks):
        if on_side is not None:
            on_side(f"serving on {c}")
        if rate is None and concurrency is None:
            work = make_workload(requests, rate=DEFAULT_START_RATE, prompt=prompt, output=output, seed=seed)
            try:
                found = max_rate_under_slo(setup, work, slo, scheduler, goodput_fraction)
            except SloUnreachableError as err:
                failures[str(c)] = str(err)
                continue
            sides.append(
                SideResult(
                    str(c),
                    setup.target,
                    setup.tp,
                    found.rate_req_s,
                    True,
                    setup,
                    found.result,
                    found.confidence(),
                    stack,
                )
            )
        else:
            work = make_workload(requests, rate=rate, concurrency=concurrency, prompt=prompt, output=output, seed=seed)
            result = simulate(setup.model, setup.replica, work, scheduler, slo=slo)
            sides.append(SideResult(str(c), setup.target, setup.tp, rate, False, setup, result, stack=stack))
    if not sides:
        raise SloUnreachableError("no hardware meets the SLO: " + " | ".join(f"{k}: {v}" for k, v in failures.items()))
    curve: list[dict[str, Any]] = []
    for side in sides:  # latency vs load around each side's rate (none for a fixed concurrency)
        if side.rate_req_s is None or not curve_fractions:
            continue
        if on_side is not None:
            on_side(f"latency vs load on {side.hw}")
        steady = (side.capacity or {}).get("steady_state") or {}
        base = make_workload(requests, rate=side.rate_req_s, prompt=prompt, output=output, seed=seed)
        rates = [side.rate_req_s * f for f in curve_fractions]
        curve += load_curve(
            side.setup.model,
            side.setup.replica,
            base,
            rates,
            scheduler,
            slo=slo,
            hw=side.hw,
            latency_hint_s=steady.get("e2e_p50_s"),
        )
    return Comparison(model, slo, sides, failures, curve)
