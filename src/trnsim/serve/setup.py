"""From "model X on instance Y at tensor parallelism tp" to the simulator's ServedModel and Replica.

    hw = parse_hw("trn2.48xlarge:tp=64")
    setup = serving_setup("llama-3.1-70b", hw.instance, hw.tp, progress=True)
    result = simulate(setup.model, setup.replica, workload)

The replica's memory, price and power are its share of the instance (a replica smaller than an instance
shares it; a larger one spans whole instances), from the cost tables (prices.toml, power.toml, with their
sources). Its step cost is `estimated_step_cost` on the instance's accelerator: the compiler's estimate on
Trainium-class chips, the GPU model on GPUs. Impossible setups (tp larger than the instance, weights that do
not fit) fail before any estimate runs, with a message saying what to change.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from trnsim.cost.power_table import PowerTable
from trnsim.cost.prices import PriceTable
from trnsim.serve.errors import ModelDoesNotFitError, ServeError
from trnsim.serve.model import DEFAULT_RESERVE_FRACTION, GIB, Replica, ServedModel
from trnsim.serve.serving_stack import ServingStack
from trnsim.serve.step_components import weight_layout_for
from trnsim.serve.workload import Workload

_HW_FORM = re.compile(r"^\s*([A-Za-z0-9._-]+)\s*(?::\s*tp\s*=\s*(\d+)\s*)?$")
BOUNDS_SAMPLE = 4096  # requests drawn to size the step grid (a huge workload is not drawn whole for it)
DEFAULT_COOLING = "air"  # cooling whose PUE turns IT power into the facility power J/token reports


@dataclass(frozen=True)
class HwChoice:
    instance: str
    tp: int | None  # None: the caller's default

    def __str__(self) -> str:
        return self.instance if self.tp is None else f"{self.instance}:tp={self.tp}"


def parse_hw(text: str, default_tp: int | None = None) -> HwChoice:
    """ "trn2.48xlarge:tp=64" -> HwChoice("trn2.48xlarge", 64); "p5.48xlarge" -> tp = default_tp."""
    match = _HW_FORM.match(text)
    if match is None:
        raise ServeError(f"hardware {text!r} is not INSTANCE or INSTANCE:tp=N (e.g. trn2.48xlarge:tp=64)")
    tp = int(match.group(2)) if match.group(2) is not None else default_tp
    if tp is not None and tp < 1:
        raise ServeError(f"tp in {text!r} must be >= 1")
    return HwChoice(match.group(1), tp)


def accelerator_target(instance: str, prices: PriceTable | None = None) -> str:
    """The hardware or GPU preset that models the accelerator of `instance` (from prices.toml)."""
    from trnsim.cost import load_prices
    from trnsim.gpu.presets import list_gpus
    from trnsim.hw.presets import list_presets

    chip = (prices or load_prices()).instance(instance).accelerator
    if chip in list_presets() or chip in list_gpus():
        return chip
    raise ServeError(
        f"{instance} holds {chip} accelerators, which trnsim has no model of; modelled: "
        f"{', '.join(list_presets() + list_gpus())} (e.g. trn2.48xlarge, p5.48xlarge, p5e.48xlarge)"
    )


@dataclass(frozen=True)
class GridBounds:
    """The step shapes a workload can produce under a scheduler: what the step-latency grid must span."""

    max_batch: int
    max_context: int
    max_new_tokens: int


def grid_bounds(workload: Workload, scheduler: str = "continuous") -> GridBounds:
    """Largest batch (the scheduler's cap, or every request at once), context (the longest request) and new
    tokens per step (the scheduler's token budget, or the longest prompt, which runs alone when longer)."""
    from trnsim.serve.schedulers import scheduler_from_name

    return scheduler_grid_bounds(workload, scheduler_from_name(scheduler))


def scheduler_grid_bounds(workload: Workload, config: Any) -> GridBounds:
    """grid_bounds for a scheduler configuration object (e.g. one with its own max_batch).

    Static batching pads its prefill to the batch's longest prompt, so its widest step is max_batch times
    the longest prompt (never the sum of every prompt in the workload). Lengths come from at most
    BOUNDS_SAMPLE requests, and the longest from the length distributions' own maximum."""
    sample = workload if workload.num_requests <= BOUNDS_SAMPLE else replace(workload, num_requests=BOUNDS_SAMPLE)
    requests = sample.generate()
    prompts = requests.prompt_tokens
    longest_prompt = int(prompts.max())
    longest = int((prompts + requests.output_tokens).max())
    if workload.trace is None:
        assert workload.prompt is not None
        longest_prompt = max(
            longest_prompt, workload.prompt.max_tokens + (workload.prefix.tokens if workload.prefix else 0)
        )
        longest = max(longest, workload.max_request_tokens)
    count = workload.num_requests
    cap_batch = min(int(getattr(config, "max_batch", count)), count)
    budget = int(getattr(config, "max_batched_tokens", 0) or getattr(config, "token_budget", 0) or 0)
    if not budget:  # static batching: a padded prefill of the whole batch
        budget = cap_batch * longest_prompt
    total = int(prompts.sum()) if sample is workload else None  # a sample's sum says nothing of the whole
    widest = max(budget, longest_prompt)
    tokens = widest if total is None else min(widest, total + cap_batch)
    return GridBounds(max(2, cap_batch), max(2, longest), max(2, tokens))


def check_request_lengths(
    model: str,
    max_request_tokens: int,
    tp: int = 1,
    memory_bytes: float | None = None,
    served: ServedModel | None = None,
) -> None:
    """Refuse, before any grid is built, a request longer than the model's context (prompt + output), or one
    whose KV cache cannot fit next to the weights in `memory_bytes`."""
    from trnsim.models import model_facts

    facts = model_facts(model)
    if facts.max_position and max_request_tokens > facts.max_position:
        raise ServeError(
            f"a request of {max_request_tokens:,} tokens (prompt + output) exceeds {facts.name}'s context of "
            f"{facts.max_position:,} tokens; shorten --prompt/--output so that their sum is at most "
            f"{facts.max_position:,}"
        )
    if memory_bytes is not None:
        served = served or served_model(model, tp)
        kv_room = memory_bytes * (1 - DEFAULT_RESERVE_FRACTION) - served.weight_bytes
        need = max_request_tokens * served.kv_bytes_per_token
        if need > kv_room:
            raise ModelDoesNotFitError(
                f"a request of {max_request_tokens:,} tokens needs {need / GIB:.2f} GiB of KV cache, but tp={tp} "
                f"leaves {max(kv_room, 0) / GIB:.2f} GiB after {served.weight_bytes / GIB:.2f} GiB of weights; "
                "shorten prompts/outputs, raise tp or use an instance with more memory"
            )


KV_DTYPES = {"bf16": 2, "bfloat16": 2, "fp8": 1}  # KV-cache element formats and their bytes


def kv_bytes(kv_dtype: str) -> int:
    """Bytes per KV-cache element of `kv_dtype`, or a ServeError naming the allowed formats."""
    size = KV_DTYPES.get(str(kv_dtype).lower())
    if size is None:
        raise ServeError(f"--kv-dtype {kv_dtype!r} is not a KV-cache format; use one of {', '.join(KV_DTYPES)}")
    return size


@dataclass(frozen=True)
class ServingSetup:
    """What `simulate` needs for one replica kind, and where its numbers came from."""

    model: ServedModel
    replica: Replica
    instance: str
    target: str
    tp: int
    replicas_per_instance: int
    instances_per_replica: int


def served_model(
    model: str, tp: int = 1, dtype_bytes: int = 2, linear_bytes: float | None = None, kv_bytes: float | None = None
) -> ServedModel:
    """ServedModel of a preset/config.json at tensor parallelism tp: weights at dtype_bytes per parameter and
    the KV cache a token takes over all tp ranks, both with the heads as the ranks hold them
    (`tensor_parallel.local_heads`: replicated KV heads, heads padded to a multiple of tp).

    linear_bytes: the linear layers' weights (what `--dtype fp8` quantises) at this many bytes per parameter;
    kv_bytes: the KV cache at this many bytes per element (fp8 KV: 1). None: dtype_bytes."""
    from trnsim.compiler.tensor_parallel import local_heads
    from trnsim.models import model_facts

    facts = model_facts(model)
    if not facts.n_kv_heads:
        raise ServeError(f"{facts.name} is not a decoder (no KV cache); serving needs a causal language model")
    linear = dtype_bytes if linear_bytes is None else linear_bytes
    weights = float(facts.weight_bytes(dtype_bytes))
    if linear != dtype_bytes:
        weights -= float(linear_params(model)) * (dtype_bytes - linear)
    q_local, kv_local = local_heads(facts.n_heads, facts.n_kv_heads, tp) if tp > 1 else (0, 0)
    if tp > 1:  # padded query heads (q and o projections) and replicated/padded KV heads (k and v) are stored too
        extra_heads = 2 * (q_local * tp - facts.n_heads) + 2 * (kv_local * tp - facts.n_kv_heads)
        weights += float(facts.n_layers * extra_heads * facts.head_dim * facts.hidden_size * linear)
    kv_heads_total = kv_local * tp if tp > 1 else facts.n_kv_heads
    kv_elem = dtype_bytes if kv_bytes is None else kv_bytes
    if facts.kv_latent_dim:
        # MLA (DeepSeek) caches one latent per token and layer, shared by all heads: under tensor parallelism
        # every rank keeps the whole latent (vLLM and SGLang replicate it across TP ranks).
        kv_per_token = facts.n_layers * facts.kv_latent_dim * kv_elem * max(tp, 1)
    else:
        kv_per_token = 2 * facts.n_layers * kv_heads_total * facts.head_dim * kv_elem
    if not kv_per_token:
        raise ServeError(f"{facts.name} is not a decoder (no KV cache); serving needs a causal language model")
    return ServedModel(facts.name, weights, float(kv_per_token), float(facts.n_params))


@functools.cache
def linear_params(model: str) -> int:
    """Parameters held by the model's linear layers (torch.nn.Linear, the LM head included, each tensor once) and
    its experts' stacked weights: the weights an fp8/fp4/MX serving format stores at its own size, as the estimate
    counts them (compiler/dtype_estimate.py)."""
    import torch

    from trnsim.models import build_model
    from trnsim.models.config import resolve_config

    net = build_model(resolve_config(model), device="meta")
    seen: dict[int, int] = {}
    for module in net.modules():
        if isinstance(module, torch.nn.Linear):
            seen[id(module.weight)] = module.weight.numel()
    for name, w in net.named_parameters():
        if ".experts." in name and w.dim() == 3:  # a MoE model's stacked expert weights (its grouped matmuls)
            seen[id(w)] = w.numel()
    return sum(seen.values())


def serving_setup(
    model: str,
    instance: str,
    tp: int,
    *,
    dtype: str = "bfloat16",
    weight_format: str = "bf16",
    kv_dtype: str | None = None,
    bounds: GridBounds | None = None,
    cache: bool = True,
    progress: bool = False,
    prices: PriceTable | str | Path | None = None,
    power_table: PowerTable | str | Path | None = None,
    stack: ServingStack | None = None,
    check_lengths: bool = True,
) -> ServingSetup:
    """ServedModel + Replica for `model` on `instance` with `tp` ranks per replica (logical NeuronCores or GPUs).

    bounds: the step shapes the step-latency grid spans (`grid_bounds(workload, scheduler)`); by default
    estimated_step_cost's (batch 256, context 32768, 8192 new tokens). prices / power_table: a user's TOML
    laid over prices.toml / power.toml (as `trnsim plan --prices/--power-table`), or loaded tables.
    weight_format: "bf16", "fp8" or "fp4" (`--dtype`): the linear layers' weights stored and their matmuls priced
    in that format (compiler/dtype_estimate.py), so the weights take less HBM and leave more KV cache.
    kv_dtype: "bf16" or "fp8" (`--kv-dtype`): the KV cache's element size (capacity only; attention time stays
    that of a bf16 cache). None: `dtype`.
    stack: the Neuron serving stack's own behaviour (`serving_stack.ServingStack`): its sequence-length buckets laid
    over the step cost, and weights in the layout the stacks store (serve/weight_layout.py); None prices the exact
    shapes on PyTorch's layout. check_lengths=False skips the refusal of
    requests longer than the model's trained context (for replaying deployments that ran them anyway)."""
    from trnsim.compiler.dtype_estimate import check_estimate_dtype
    from trnsim.cost import load_power, load_prices, server_power
    from trnsim.cost.capacity_source import chips_per_replica, replica_layout
    from trnsim.hw.presets import list_presets
    from trnsim.serve.estimate_step_cost import DTYPES, estimated_step_cost

    if dtype not in DTYPES:
        raise ServeError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}")
    if not isinstance(prices, PriceTable):
        prices = load_prices(prices)
    power = power_table if isinstance(power_table, PowerTable) else load_power(power_table)
    entry = prices.instance(instance)
    target = accelerator_target(instance, prices)
    per_instance, instances_per_replica = replica_layout(instance, tp, prices)
    dtype_bytes = DTYPES[dtype]
    fmt = check_estimate_dtype(weight_format, gpu=target not in list_presets())
    served = served_model(
        model, tp, dtype_bytes, None if fmt is None else fmt.bytes, None if kv_dtype is None else kv_bytes(kv_dtype)
    )
    memory = chips_per_replica(entry, tp) * entry.hbm_gib_per_accelerator * GIB
    usable = memory * (1 - DEFAULT_RESERVE_FRACTION)
    if served.weight_bytes >= usable:
        raise ModelDoesNotFitError(
            f"{served.name} needs {served.weight_bytes / GIB:.1f} GiB of weights but tp={tp} on {instance} gives "
            f"{memory / GIB:.1f} GiB of HBM ({usable / GIB:.1f} GiB usable after the "
            f"{DEFAULT_RESERVE_FRACTION:.0%} reserve); raise tp or choose an instance with more memory"
        )
    if bounds is not None and check_lengths:  # refuse over-long requests before the grid is built out to their length
        check_request_lengths(model, bounds.max_context, tp, memory, served)
    spec_instances = _spec_instance(target, instance)
    limits = {} if bounds is None else vars(bounds)
    with weight_layout_for("pytorch" if stack is None else "stack"):
        step_cost = estimated_step_cost(
            model,
            target,
            tp,
            spec_instances,
            dtype=dtype,
            weight_format=weight_format,
            cache=cache,
            progress=progress,
            **limits,
        )
    served_step: Any = step_cost if stack is None else stack.wrap(step_cost)
    share = instances_per_replica / per_instance  # instances one replica stands for
    facility_w = server_power(instance, prices, power).peak_w * power.cooling_for(DEFAULT_COOLING).pue.value
    replica = Replica(
        device_memory_bytes=memory,
        step_cost=served_step,
        price_per_hour=entry.usd_per_hour * share,
        power_w=facility_w * share,
        name=f"{instance}:tp={tp}",
    )
    return ServingSetup(served, replica, instance, target, tp, per_instance, instances_per_replica)


def _spec_instance(target: str, instance: str) -> str | None:
    """The hardware preset's instance of that name (its topology carries the collectives), if it has one."""
    from trnsim.hw.presets import list_presets, load_preset

    if target not in list_presets():
        return None
    names = {i.name for i in load_preset(target).instances}
    return instance if instance in names else None
