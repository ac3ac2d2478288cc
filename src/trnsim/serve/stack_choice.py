"""`--serving-stack`: which serving stack prices a deployment, and the step shapes its padding reaches.

    choice = choose_serving_stack("auto", "trn2", workload, "continuous")
    bounds = stack_grid_bounds(grid_bounds(workload, "continuous"), workload, "continuous", choice.stack)
    setup = serving_setup(model, "trn2.48xlarge", 4, bounds=bounds, stack=choice.stack)

Values: "auto" (the default) is the stack AWS documents for the accelerator's generation (serving_stack.toml
`families`: transformers-neuronx on trn1/inf2, NxD Inference on trn2/trn3); "exact" prices the exact step shapes on
PyTorch's weight layout; a stack's name ("transformers-neuronx", "nxd-inference") forces that stack on any Neuron
chip, and may carry NxD Inference's deployment options after a colon ("nxd-inference:sequence-parallel,qkv,mlp",
as AWS's trn2 Llama tutorials compile; auto takes the stack's defaults, which leave them off). A GPU, or a path the
stack model does not cover (chunked prefill, which mixes prefill and decode in one step
while the stacks compile them as separate graphs; disaggregated pools, pipeline stages, expert parallelism,
tenants), gets exact shapes under "auto" with a note saying why, and is refused when a stack is named.

The deployment's sequence length (the stacks' `n_positions` / `seq_len`, the last bucket) is the longest request,
prompt + output, as every transformers-neuronx configuration behind AWS's published trn1/inf2 numbers sets it
(bench/data/neuron_serving_published.csv: seq_len = input + output, 1,152 for 128 + 1,024). On
transformers-neuronx, whose context buckets are half the token buckets, it is at least twice the longest prompt, so
that every prompt has a context bucket (a deployment would set `context_length_estimate` otherwise). Both are capped
at the model's context.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from trnsim.serve.errors import ServeError
from trnsim.serve.serving_stack import ServingStack, bucket_of, default_stack, known_stacks, stack_family
from trnsim.serve.setup import BOUNDS_SAMPLE, GridBounds
from trnsim.serve.stack_kernel_layout import PROJECTIONS
from trnsim.serve.workload import Workload

DEFAULT_SERVING_STACK = "auto"  # closer to real hardware: what AWS's Neuron deployments run
EXACT = "exact"
# Schedulers whose steps the stack model prices: static batching pads a batch as the stacks' static graphs do;
# continuous batching (vLLM v0) runs prefill-only and decode-only steps, each prompt padded to its own bucket.
STACK_SCHEDULERS = ("static", "continuous")
# What an NxD Inference deployment may opt into, after the stack's name: AWS's trn2 Llama tutorials compile with
# all three (serve/stack_sequence_parallel.py, serve/stack_kernel_layout.py).
DEPLOYMENT_OPTIONS = ("sequence-parallel", *PROJECTIONS)
NXDI_EXAMPLE = "nxd-inference:sequence-parallel,qkv,mlp"


def serving_stack_choices() -> tuple[str, ...]:
    """The values --serving-stack accepts."""
    return (DEFAULT_SERVING_STACK, EXACT, *known_stacks())


@dataclass(frozen=True)
class StackChoice:
    """The stack a deployment is priced with (None: exact shapes), what was asked for, and why auto fell back."""

    requested: str
    stack: ServingStack | None
    seq_len: int | None = None
    note: str = ""

    @property
    def name(self) -> str:
        return EXACT if self.stack is None else self.stack.name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"requested": self.requested, "name": self.name, "note": self.note or None}
        if self.stack is not None:
            out |= {
                "seq_len": self.seq_len,
                "context_buckets": list(self.stack.context_buckets),
                "token_buckets": list(self.stack.token_buckets),
                "context_attention": self.stack.context_attention,
                "sequence_parallel": self.stack.sequence_parallel,
                "kernel_weights": list(self.stack.kernel_weights),
            }
        return out


def choose_serving_stack(
    requested: str,
    accelerator: str,
    workload: Workload,
    scheduler: str = "continuous",
    model: str | None = None,
    unsupported: str | None = None,
) -> StackChoice:
    """The StackChoice for `requested` (one of serving_stack_choices()) on `accelerator` (a hardware or GPU preset:
    "trn2", "h100") serving `workload` under `scheduler`. unsupported: the caller's path the stack model does not
    cover (e.g. "--pp"), which makes auto exact and a named stack an error. model: caps the sequence length at its
    context (None: uncapped)."""
    from trnsim.serve.schedulers import canonical_scheduler

    key, options = _split(requested)
    if key == EXACT:
        return StackChoice(key, None)
    family = stack_family(accelerator)
    sched = "disaggregated" if scheduler.strip().lower() == "disaggregated" else canonical_scheduler(scheduler)
    why = None
    if family is None:
        why = f"{accelerator} is not a Neuron chip (the Neuron serving stacks run on trn1, inf2, trn2, trn3)"
    elif unsupported is not None:
        why = f"the serving-stack model does not cover {unsupported}"
    elif sched not in STACK_SCHEDULERS:
        why = (
            f"the serving-stack model does not cover --scheduler {sched} (the stacks compile context encoding and "
            "token generation as separate graphs; a chunked-prefill step mixes them)"
        )
    if why is not None:
        if key == DEFAULT_SERVING_STACK:
            return StackChoice(key, None, note=f"exact shapes: {why}")
        raise ServeError(f"--serving-stack {key}: {why}; use --serving-stack exact (or auto)")
    assert family is not None
    name = family if key == DEFAULT_SERVING_STACK else key
    seq_len = deployment_seq_len(name, workload, model)
    stack = default_stack(name, seq_len)
    if options:
        if stack.name != "nxd-inference":
            raise ServeError(f"--serving-stack {requested}: {', '.join(options)} are NxD Inference deployment options")
        sp = "sequence-parallel" in options
        stack = replace(stack, sequence_parallel=sp, kernel_weights=tuple(o for o in options if o in PROJECTIONS))
    return StackChoice(str(requested).strip().lower(), stack, seq_len)


def _checked(requested: str) -> str:
    key = str(requested).strip().lower()
    if key not in serving_stack_choices():
        raise ServeError(f"--serving-stack {requested!r} is not known; use one of {', '.join(serving_stack_choices())}")
    return key


def _split(requested: str) -> tuple[str, tuple[str, ...]]:
    """ "nxd-inference:sequence-parallel,qkv,mlp" -> ("nxd-inference", its deployment options)."""
    name, _, rest = str(requested).partition(":")
    key = _checked(name)
    options = tuple(o.strip().lower() for o in rest.split(",") if o.strip())
    unknown = [o for o in options if o not in DEPLOYMENT_OPTIONS]
    if unknown:
        raise ServeError(
            f"--serving-stack {requested!r}: unknown deployment option {', '.join(unknown)}; "
            f"known: {', '.join(DEPLOYMENT_OPTIONS)} (NxD Inference's sequence_parallel_enabled, qkv_kernel_enabled, "
            "mlp_kernel_enabled)"
        )
    if options and key in (DEFAULT_SERVING_STACK, EXACT):
        raise ServeError(
            f"--serving-stack {requested!r}: deployment options go with a stack's name, e.g. {NXDI_EXAMPLE}"
        )
    return key, options


def exact_only(requested: str, path: str) -> StackChoice:
    """The choice for a path the stack model does not cover (`path`, e.g. "--deployment"): exact shapes under
    auto or exact, a ServeError for a named stack."""
    key, _ = _split(requested)
    if key not in (DEFAULT_SERVING_STACK, EXACT):
        raise ServeError(f"--serving-stack {key}: the serving-stack model does not cover {path}; use exact (or auto)")
    return StackChoice(
        key, None, note="" if key == EXACT else f"exact shapes: the serving-stack model does not cover {path}"
    )


def _longest(workload: Workload) -> tuple[int, int, int]:
    """(shortest prompt, longest prompt, longest prompt + output) the workload can draw."""
    if workload.trace is not None:
        n = workload.num_requests
        prompts = workload.trace.prompt_tokens[:n]
        return int(prompts.min()), int(prompts.max()), workload.max_request_tokens
    assert workload.prompt is not None
    extra = workload.prefix.tokens if workload.prefix is not None else 0
    low = int(getattr(workload.prompt, "low", getattr(workload.prompt, "tokens", 1)))
    shortest = low + extra if workload.prefix is not None and workload.prefix.fraction >= 1 else low
    return shortest, workload.prompt.max_tokens + extra, workload.max_request_tokens


def deployment_seq_len(stack: str, workload: Workload, model: str | None = None) -> int:
    """The sequence length a deployment of `stack` compiles for `workload` (module docstring)."""
    _, longest_prompt, longest = _longest(workload)
    seq_len = longest
    if default_stack(stack, seq_len).context_buckets[-1] < longest_prompt:  # transformers-neuronx's half buckets
        seq_len = 2 * longest_prompt
    if model is not None:
        from trnsim.models import model_facts

        limit = int(model_facts(model).max_position or 0)
        if limit:
            seq_len = min(seq_len, max(limit, longest))
    return seq_len


def stack_grid_bounds(
    bounds: GridBounds, workload: Workload, scheduler: str | Any, stack: ServingStack | None
) -> GridBounds:
    """`bounds` widened to the shapes `stack` pads steps to, so the step grid interpolates (not extrapolates)
    them: decode contexts up to their token bucket, prompts up to their context bucket, and a prefill step's new
    tokens up to the sum of its prompts' buckets (static batching: the batch times the longest prompt's bucket)."""
    if stack is None:
        return bounds
    from trnsim.serve.schedulers import scheduler_from_name

    config = scheduler_from_name(scheduler) if isinstance(scheduler, str) else scheduler
    shortest, longest_prompt, longest = _longest(workload)
    count = min(workload.num_requests, BOUNDS_SAMPLE) if workload.trace is None else workload.num_requests
    largest = stack.context_buckets[-1]
    clipped = min(longest_prompt, largest) if stack.leftover_by_token_generation else longest_prompt
    prompt_bucket = int(bucket_of(clipped, stack.context_buckets))
    batch = max(1, min(bounds.max_batch, int(getattr(config, "max_batch", count))))
    budget = int(getattr(config, "max_batched_tokens", 0) or 0)
    if budget:  # continuous: prompts summing to the budget (one longer prompt runs alone), each padded
        fitting = max(1, min(batch, budget // max(shortest, 1)))
        padded = min(fitting * prompt_bucket, 2 * budget + fitting * stack.context_buckets[0])
    else:  # static: the whole batch at the longest prompt's bucket
        padded = batch * prompt_bucket
    context = max(int(bucket_of(longest, stack.token_buckets)), prompt_bucket)
    # The grid's axes end at their bound rounded up to a power of two (estimate_step_cost), which holds the
    # buckets unless requests are shorter than the first one; max_context is also what serving_setup checks the
    # KV cache against, so it grows only when it must.
    if _power_of_two_at_least(bounds.max_context) < context:
        bounds = GridBounds(bounds.max_batch, context, bounds.max_new_tokens)
    return GridBounds(bounds.max_batch, bounds.max_context, max(bounds.max_new_tokens, padded, prompt_bucket))


def _power_of_two_at_least(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()
