"""Evaluating one sweep point: the modified spec, its step cost, a serving simulation, one flat result row.

An infeasible point (the model does not fit at that tp, a tp the instance cannot split into) is a row with
its `error` filled and the metrics empty, so one bad corner does not stop a sweep; every other failure raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from trnsim.errors import TrnsimError
from trnsim.hw import get_spec
from trnsim.hw.spec import HardwareSpec
from trnsim.serve import (
    SLO,
    Replica,
    SchedulerConfig,
    ServedModel,
    Workload,
    make_workload,
    parse_lengths,
    scheduler_from_name,
    simulate,
)
from trnsim.sweep.errors import SweepError
from trnsim.sweep.model_sizes import ModelSizes, model_sizes
from trnsim.sweep.replica_shape import default_instance, replica_shape
from trnsim.sweep.space import SERVING_PARAMS
from trnsim.sweep.spec_override import override_spec
from trnsim.sweep.step_costs import RooflineFactory, StepCostFactory

# Result columns after the swept parameters, in this order.
METRIC_COLUMNS = (
    "throughput_tok_s",
    "ttft_ms_p50",
    "ttft_ms_p99",
    "tpot_ms_p50",
    "tpot_ms_p99",
    "e2e_ms_p50",
    "e2e_ms_p99",
    "goodput_req_s",
    "slo_attainment",
    "utilization",
    "usd_per_mtok",
    "j_per_tok",
    "preemptions",
    "error",
)


def step_bounds(workload: Workload, scheduler: SchedulerConfig) -> dict[str, int]:
    """The step shapes this workload can produce under this scheduler (what a step-latency grid must span):
    batch up to the cap (or every request), context up to the longest request, new tokens up to the token
    budget (or the longest prompt, which runs alone): trnsim.serve.setup's bounds, so `trnsim serve` and a sweep
    share the on-disk step grids."""
    from trnsim.serve.setup import scheduler_grid_bounds

    b = scheduler_grid_bounds(workload, scheduler)
    return {"max_batch": b.max_batch, "max_context": b.max_context, "max_new_tokens": b.max_new_tokens}


@dataclass(frozen=True)
class ServingSetup:
    """The serving settings every point shares; a point's serving parameters replace these."""

    model: str
    hw: str | HardwareSpec = "trn2"
    instance: str | None = None  # None: the spec's first priced instance
    requests: int = 200
    prompt: str = "512"
    output: str = "128"
    rate: float | None = None
    concurrency: int | None = None
    tp: int = 1
    max_batch: int | None = None  # None: the scheduler's default
    scheduler: str = "continuous"
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None
    dtype: str = "bfloat16"
    seed: int = 0


@dataclass(frozen=True)
class Evaluator:
    """Callable on a point dict -> result row. Picklable (for worker processes and Ray tasks).

    Call `resolved()` once before a sweep: it checks the setup and carries the model's sizes along, so
    workers do not load torch/transformers to read the model config again.
    """

    setup: ServingSetup
    step_cost: StepCostFactory = field(default_factory=RooflineFactory)
    sizes: ModelSizes | None = None

    def resolved(self) -> Evaluator:
        self.check()
        return replace(self, sizes=self.model_sizes())

    def model_sizes(self) -> ModelSizes:
        return self.sizes if self.sizes is not None else model_sizes(self.setup.model, self.setup.dtype)

    def base_spec(self) -> HardwareSpec:
        return get_spec(self.setup.hw)

    def check(self) -> None:
        """Raise on settings that would fail at every point (model, scheduler, lengths, instance, SLO)."""
        s = self.setup
        if s.rate is not None and s.concurrency is not None:
            raise SweepError("give a rate (requests/s) or a concurrency (clients), not both")
        self.model_sizes()
        scheduler_from_name(s.scheduler, s.max_batch)
        parse_lengths(s.prompt, "prompt")
        parse_lengths(s.output, "output")
        spec = self.base_spec()
        spec.instance(s.instance or default_instance(spec))
        if s.slo_ttft_ms or s.slo_tpot_ms:
            SLO(s.slo_ttft_ms, s.slo_tpot_ms)

    def __call__(self, point: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = dict(point)
        row.update(dict.fromkeys(METRIC_COLUMNS))
        try:
            row.update(self._metrics(point))
        except TrnsimError as exc:
            row["error"] = str(exc).replace("\n", " ")
        return row

    def _metrics(self, point: dict[str, Any]) -> dict[str, Any]:
        s = self.setup
        serving = {k: v for k, v in point.items() if k in SERVING_PARAMS}
        hardware = {k: v for k, v in point.items() if k not in SERVING_PARAMS}
        spec = override_spec(self.base_spec(), hardware)
        instance = s.instance or default_instance(spec)
        tp = int(serving.get("tp", s.tp))
        rate, concurrency = s.rate, s.concurrency
        if "rate" in serving:
            rate, concurrency = serving["rate"], None
        if "concurrency" in serving:
            rate, concurrency = None, serving["concurrency"]
        prompt, output = str(serving.get("prompt", s.prompt)), str(serving.get("output", s.output))
        max_batch = serving.get("max_batch", s.max_batch)
        scheduler = scheduler_from_name(str(serving.get("scheduler", s.scheduler)), max_batch)
        workload = make_workload(
            s.requests, rate=rate, concurrency=concurrency, prompt=prompt, output=output, seed=s.seed
        )
        shape = replica_shape(spec, tp, instance)
        sizes = self.model_sizes()
        step_cost = self.step_cost(s.model, sizes, spec, tp, instance, **step_bounds(workload, scheduler))
        model = ServedModel(sizes.name, sizes.weight_bytes, sizes.kv_bytes_per_token_at(tp), sizes.params)
        replica = Replica(shape.hbm_bytes, step_cost, shape.usd_per_hour, shape.power_w, name=f"{instance} tp={tp}")
        slo = SLO(s.slo_ttft_ms, s.slo_tpot_ms) if s.slo_ttft_ms or s.slo_tpot_ms else None
        m = simulate(model, replica, workload, scheduler, slo=slo).metrics
        return {
            "throughput_tok_s": m.throughput_tok_s,
            "ttft_ms_p50": m.ttft_ms.p50,
            "ttft_ms_p99": m.ttft_ms.p99,
            "tpot_ms_p50": m.tpot_ms.p50,
            "tpot_ms_p99": m.tpot_ms.p99,
            "e2e_ms_p50": m.e2e_ms.p50,
            "e2e_ms_p99": m.e2e_ms.p99,
            "goodput_req_s": m.goodput_req_s,
            "slo_attainment": m.slo_attainment,
            "utilization": m.utilization,
            "usd_per_mtok": m.usd_per_mtok,
            "j_per_tok": m.j_per_tok,
            "preemptions": m.preemptions,
        }
