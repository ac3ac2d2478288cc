"""One tenant of a deployment served on its share of an instance: Trainium NeuronCores or GPUs / MIG slices.

The replica gets `share` of the instance's price and power and `memory_bytes` of HBM; its step cost is the
compiler's estimate (Trainium) or the GPU model's, on the accelerator as the tenant sees it (`target`: a
HardwareSpec with its bandwidths under the neighbours' load, or a GpuSpec cut to a MIG slice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trnsim.cost import load_power, load_prices, server_power
from trnsim.gpu.spec import GpuSpec
from trnsim.hw.spec import HardwareSpec
from trnsim.serve.deployment_links import WireMeter
from trnsim.serve.errors import ModelDoesNotFitError
from trnsim.serve.model import DEFAULT_RESERVE_FRACTION, GIB, Replica
from trnsim.serve.options import make_workload
from trnsim.serve.setup import DEFAULT_COOLING, check_request_lengths, grid_bounds, served_model
from trnsim.serve.simulate import simulate
from trnsim.serve.step_cost import StepCost


@dataclass(frozen=True)
class TenantLoad:
    """What a tenant serves: its model and its traffic."""

    name: str
    model: str
    rate: float | None
    concurrency: int | None
    requests: int
    prompt: str
    output: str


def serve_tenant(
    t: TenantLoad,
    instance: str,
    target: HardwareSpec | GpuSpec,
    tp: int,
    share: float,
    memory_bytes: float,
    where: str,
    scheduler: str,
    seed: int,
    progress: bool,
    free_links: HardwareSpec | None = None,
) -> tuple[Any, float]:
    """The tenant's serve result and, when `free_links` (the same chip with unlimited links) is given, the share
    of its busy time that is link wire time (serve/deployment_links.py). `where`: its cores or slice, for
    messages and the replica's name."""
    from trnsim.serve.estimate_step_cost import estimated_step_cost  # imports torch: only when a grid is needed

    work = make_workload(
        t.requests, rate=t.rate, concurrency=t.concurrency, prompt=t.prompt, output=t.output, seed=seed
    )
    bounds = grid_bounds(work, scheduler)
    served = served_model(t.model, tp)
    if served.weight_bytes >= memory_bytes * (1 - DEFAULT_RESERVE_FRACTION):
        raise ModelDoesNotFitError(
            f"tenant {t.name!r}: {served.name} needs {served.weight_bytes / GIB:.1f} GiB of weights but {where} "
            f"hold {memory_bytes / GIB:.1f} GiB of HBM; give it more of the instance"
        )
    check_request_lengths(t.model, bounds.max_context, tp, memory_bytes)
    on = None if isinstance(target, GpuSpec) else instance  # a GPU target carries its own instance
    step: StepCost = estimated_step_cost(t.model, target, tp, on, progress=progress, **vars(bounds))
    if free_links is not None:
        free = estimated_step_cost(t.model, free_links, tp, instance, progress=progress, **vars(bounds))
        step = WireMeter(step, free)
    entry = load_prices().instance(instance)
    watts = server_power(instance).peak_w * load_power().cooling_for(DEFAULT_COOLING).pue.value * share
    replica = Replica(memory_bytes, step, entry.usd_per_hour * share, watts, name=f"{t.name} {where}")
    result = simulate(served, replica, work, scheduler)
    return result, step.wire_share if isinstance(step, WireMeter) else 0.0
