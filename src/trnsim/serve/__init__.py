"""LLM serving simulator: requests, schedulers, a paged KV cache and replicas, in discrete events.

    from trnsim.serve import *
    model = ServedModel("llama-8b", weight_bytes=16e9, kv_bytes_per_token=131072, params=8e9)
    replica = Replica(96 * 2**30, RooflineStepCost(16e9, 16e9, 131072, 667e12, 2.9e12))
    work = Workload(1000, Poisson(5.0), Uniform(100, 2000), Uniform(50, 500), seed=1)
    result = simulate(model, [replica, replica], work, ChunkedPrefill(), slo=SLO(2000, 100))
    print(result.to_dict())

Step latencies come from any `StepCost`; `StepLatencyGrid` turns an expensive one (the compiler's
estimate) into a cached, interpolated table, and `estimated_step_cost(model, target, tp)` builds that table
for a real model from trnsim.estimate (or the GPU model). `serving_setup` / `parse_hw` glue a model to an
instance (memory, price, power), and `compare_hardware` runs one model and SLO across instances.
"""

from trnsim.serve.arrivals import ClosedLoop, GammaArrivals, Poisson
from trnsim.serve.compare import Comparison, SideResult, compare_hardware, max_rate_under_slo
from trnsim.serve.engine import ProgressFn
from trnsim.serve.errors import ModelDoesNotFitError, ServeError, ServeInternalError, SloUnreachableError, TraceError
from trnsim.serve.estimate_step_cost import EstimatedStepCost, StepComponents, estimated_step_cost
from trnsim.serve.kv_cache import PagedKVCache
from trnsim.serve.lengths import Fixed, Uniform, Zipf
from trnsim.serve.metrics import SLO, Percentiles, ServeMetrics
from trnsim.serve.model import Replica, ServedModel, kv_cache_blocks
from trnsim.serve.options import make_workload, parse_lengths
from trnsim.serve.rate_search import RateSearch, find_max_rate
from trnsim.serve.result import ServeResult
from trnsim.serve.router import ROUTERS
from trnsim.serve.schedulers import (
    SCHEDULERS,
    ChunkedPrefill,
    ContinuousBatching,
    SchedulerConfig,
    SpeculativeDecoding,
    StaticBatching,
    StepRecord,
    scheduler_from_name,
)
from trnsim.serve.setup import GridBounds, HwChoice, ServingSetup, grid_bounds, parse_hw, served_model, serving_setup
from trnsim.serve.simulate import simulate
from trnsim.serve.step_cost import RooflineStepCost, StepCost
from trnsim.serve.step_grid import StepLatencyGrid, geometric_axis
from trnsim.serve.step_grid_store import default_cache_path
from trnsim.serve.trace import Trace, load_trace
from trnsim.serve.workload import RequestSet, SharedPrefix, Workload

__all__ = [
    "ROUTERS",
    "SCHEDULERS",
    "SLO",
    "ChunkedPrefill",
    "ClosedLoop",
    "Comparison",
    "ContinuousBatching",
    "EstimatedStepCost",
    "Fixed",
    "GammaArrivals",
    "GridBounds",
    "HwChoice",
    "ModelDoesNotFitError",
    "PagedKVCache",
    "Percentiles",
    "Poisson",
    "ProgressFn",
    "RateSearch",
    "Replica",
    "RequestSet",
    "RooflineStepCost",
    "SchedulerConfig",
    "ServeError",
    "ServeInternalError",
    "ServeMetrics",
    "ServeResult",
    "ServedModel",
    "ServingSetup",
    "SharedPrefix",
    "SideResult",
    "SloUnreachableError",
    "SpeculativeDecoding",
    "StaticBatching",
    "StepComponents",
    "StepCost",
    "StepLatencyGrid",
    "StepRecord",
    "Trace",
    "TraceError",
    "Uniform",
    "Workload",
    "Zipf",
    "compare_hardware",
    "default_cache_path",
    "estimated_step_cost",
    "find_max_rate",
    "geometric_axis",
    "grid_bounds",
    "kv_cache_blocks",
    "load_trace",
    "make_workload",
    "max_rate_under_slo",
    "parse_hw",
    "parse_lengths",
    "scheduler_from_name",
    "served_model",
    "serving_setup",
    "simulate",
]
