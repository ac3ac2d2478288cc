"""Demo steps 3 and 4: serve a Llama-class model on trn2 and on H100 under one SLO, then size a fleet.

Step latencies come from the compiler's estimate on trn2 and from the GPU model on H100 (both computed on a
grid once, then cached on disk); the serving simulator finds each side's highest request rate that meets
the SLO, and the cost tables turn that into $/Mtok and J/token. The capacity plan sizes both fleets for the
same token demand.
"""

from __future__ import annotations

from dataclasses import dataclass

from trnsim.cost import CapacityPlan, ReplicaCapacity, plan
from trnsim.serve.compare import Comparison, SideResult, compare_hardware
from trnsim.serve.metrics import SLO

MODEL = "llama-3.1-8b"
HARDWARE = ("trn2.48xlarge:tp=4", "p5.48xlarge:tp=1")  # one trn2 chip per replica vs one H100
DEMO_SLO = SLO(ttft_ms=2000.0, tpot_ms=100.0)
REQUESTS = 200
PROMPT, OUTPUT = "1024", "128"
DEMAND_TOKENS_PER_S = 1_000_000.0  # output tokens/s the capacity plan serves


@dataclass(frozen=True)
class ServingStep:
    comparison: Comparison
    plans: dict[str, CapacityPlan]  # hardware -> fleet for DEMAND_TOKENS_PER_S


def run_serving_step(progress: bool = True) -> ServingStep:
    cmp = compare_hardware(
        MODEL, list(HARDWARE), DEMO_SLO, requests=REQUESTS, prompt=PROMPT, output=OUTPUT, progress=progress
    )
    plans = {side.hw: plan(_capacity(side), tokens_per_s=DEMAND_TOKENS_PER_S) for side in cmp.sides}
    return ServingStep(cmp, plans)


def _capacity(side: SideResult) -> ReplicaCapacity:
    # Capacity in steady state: the found rate times the mean output length (as `trnsim plan` sizes it), not
    # the whole run's throughput, which counts the drain after the last arrival.
    tokens_per_s = (
        side.rate_req_s * float(side.result.output_tokens.mean())
        if side.searched and side.rate_req_s is not None
        else side.result.metrics.throughput_tok_s
    )
    return ReplicaCapacity(
        tokens_per_s,
        side.setup.instance,
        side.setup.instances_per_replica,
        side.setup.replicas_per_instance,
    )
