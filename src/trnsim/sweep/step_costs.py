"""Where a sweep point's step latencies come from: a factory (model, sizes, spec, tp, instance, step-shape
bounds) -> StepCost.

Factories are small frozen dataclasses so an evaluator holding one pickles into worker processes and Ray tasks.
- RooflineFactory: the analytic RooflineStepCost from the point's spec (TensorE peak, HBM bandwidth) and the
  model's sizes. Fast; blind to SBUF size, engine clocks other than TensorE's and collectives.
- EstimateFactory: trnsim.serve.estimate_step_cost.estimated_step_cost, the compiler + simulator on the
  point's spec (slow the first time for each spec, then cached on disk).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from trnsim.hw.spec import HardwareSpec
from trnsim.serve.step_cost import RooflineStepCost, StepCost
from trnsim.sweep.errors import SweepError
from trnsim.sweep.model_sizes import ModelSizes, bytes_per_param
from trnsim.sweep.replica_shape import replica_shape

_ESTIMATED: dict[tuple[object, ...], StepCost] = {}


class StepCostFactory(Protocol):
    @property
    def name(self) -> str: ...

    def __call__(
        self,
        model: str,
        sizes: ModelSizes,
        spec: HardwareSpec,
        tp: int,
        instance: str,
        *,
        max_batch: int,
        max_context: int,
        max_new_tokens: int,
    ) -> StepCost: ...


@dataclass(frozen=True)
class RooflineFactory:
    name: str = "roofline"

    def __call__(
        self,
        model: str,
        sizes: ModelSizes,
        spec: HardwareSpec,
        tp: int,
        instance: str,
        *,
        max_batch: int,
        max_context: int,
        max_new_tokens: int,
    ) -> StepCost:
        shape = replica_shape(spec, tp, instance)
        return RooflineStepCost(
            weight_bytes=sizes.weight_bytes,
            flops_per_token=2.0 * sizes.active_params,  # a multiply-add per active parameter per token
            kv_bytes_per_token=sizes.kv_bytes_per_token_at(tp),
            peak_flops=shape.peak_flops,
            hbm_bytes_per_s=shape.hbm_bytes_per_s,
        )


@dataclass(frozen=True)
class EstimateFactory:
    dtype: str = "bfloat16"
    cache: bool = True
    name: str = "estimate"

    def __call__(
        self,
        model: str,
        sizes: ModelSizes,
        spec: HardwareSpec,
        tp: int,
        instance: str,
        *,
        max_batch: int,
        max_context: int,
        max_new_tokens: int,
    ) -> StepCost:
        # Points differing only in serving parameters share a step cost: build it once per process.
        key = (model, spec.model_dump_json(), tp, instance, max_batch, max_context, max_new_tokens, self.dtype)
        if key not in _ESTIMATED:
            estimated_step_cost = load_estimated_step_cost()
            _ESTIMATED[key] = estimated_step_cost(
                model,
                target=spec,
                tp=tp,
                instance=instance,
                dtype=self.dtype,
                max_batch=max_batch,
                max_context=max_context,
                max_new_tokens=max_new_tokens,
                cache=self.cache,
            )
        return _ESTIMATED[key]


def load_estimated_step_cost() -> Callable[..., StepCost]:
    try:
        from trnsim.serve.estimate_step_cost import estimated_step_cost
    except ImportError:
        raise SweepError(
            "the compiler-backed step cost (trnsim.serve.estimate_step_cost) is not in this build; "
            "use the analytic one (--step-cost roofline)"
        ) from None
    return estimated_step_cost


STEP_COSTS = ("roofline", "estimate")


def step_cost_factory(name: str, dtype: str = "bfloat16") -> StepCostFactory:
    """The factory called `name`; "estimate" fails here, before any point runs, when it is not available."""
    bytes_per_param(dtype)
    if name == "roofline":
        return RooflineFactory()
    if name == "estimate":
        load_estimated_step_cost()
        return EstimateFactory(dtype=dtype)
    raise SweepError(f"unknown step cost {name!r}; choose one of: {', '.join(STEP_COSTS)}")
