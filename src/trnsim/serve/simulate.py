"""`simulate`: run a workload through replicas of a served model and measure it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trnsim.serve.engine import ProgressFn, check_conservation, run_events
from trnsim.serve.errors import ModelDoesNotFitError, ServeError, ServeInternalError
from trnsim.serve.kv_cache import PagedKVCache
from trnsim.serve.metrics import SLO, compute_metrics
from trnsim.serve.model import (
    DEFAULT_BLOCK_TOKENS,
    DEFAULT_RESERVE_FRACTION,
    GIB,
    Replica,
    ServedModel,
    kv_cache_blocks,
)
from trnsim.serve.result import ServeResult
from trnsim.serve.router import make_router
from trnsim.serve.schedulers import (
    ChunkedPrefill,
    ContinuousBatching,
    SchedulerConfig,
    StaticBatching,
    scheduler_from_name,
)
from trnsim.serve.schedulers.base import ReplicaContext
from trnsim.serve.schedulers.speculative import SpeculativeDecoding
from trnsim.serve.workload import Workload


def simulate(
    model: ServedModel,
    replicas: Replica | Sequence[Replica],
    workload: Workload,
    scheduler: SchedulerConfig | str | None = None,
    *,
    router: str = "round-robin",
    slo: SLO | None = None,
    speculative: SpeculativeDecoding | None = None,
    prefix_caching: bool = False,
    kv_block_tokens: int = DEFAULT_BLOCK_TOKENS,
    kv_reserve_fraction: float = DEFAULT_RESERVE_FRACTION,
    record_token_times: bool = False,
    record_steps: bool = False,
    progress: ProgressFn | None = None,
) -> ServeResult:
    """Serve `workload` with `model` on `replicas` and return every request's timings and the metrics.

    scheduler: StaticBatching, ContinuousBatching (default) or ChunkedPrefill, or one of their names
    ("static", "continuous", "chunked") for the default caps. router: "round-robin" or
    "least-outstanding". progress(done, total) is called as requests finish (about 200 times per run).
    record_token_times keeps every output token's time (memory grows with the tokens); record_steps keeps
    one StepRecord per model step.
    """
    if scheduler is None:
        scheduler = ContinuousBatching()
    elif isinstance(scheduler, str):
        if scheduler.strip().lower() == "disaggregated":  # two pools, not replicas: its own entry point
            raise ServeError(
                "the disaggregated scheduler serves with a prefill pool and a decode pool: call "
                "trnsim.serve.disaggregated.simulate_disaggregated(model, prefill, decode, workload, link)"
            )
        scheduler = scheduler_from_name(scheduler)
    if not isinstance(scheduler, StaticBatching | ContinuousBatching | ChunkedPrefill):
        raise ServeError(
            f"scheduler must be StaticBatching, ContinuousBatching or ChunkedPrefill, got {type(scheduler).__name__}"
        )
    replica_list = [replicas] if isinstance(replicas, Replica) else list(replicas)
    if not replica_list:
        raise ServeError("simulate needs at least one replica")
    _check_stack_steps(replica_list, scheduler, speculative)
    route = make_router(router)
    requests = workload.generate()
    longest = int((requests.prompt_tokens + requests.output_tokens).max())
    contexts: list[ReplicaContext] = []
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(workload.seed).spawn(4 + len(replica_list))][4:]
    for i, replica in enumerate(replica_list):
        blocks = kv_cache_blocks(model, replica, kv_block_tokens, kv_reserve_fraction)
        if -(-longest // kv_block_tokens) > blocks:
            kv_gib = blocks * kv_block_tokens * model.kv_bytes_per_token / GIB
            need_gib = longest * model.kv_bytes_per_token / GIB
            raise ModelDoesNotFitError(
                f"the longest request needs {longest} tokens ({need_gib:.2f} GiB) of KV cache, but replica "
                f"{replica.name or i} has {blocks * kv_block_tokens} tokens ({kv_gib:.2f} GiB) left after "
                f"{model.weight_bytes / GIB:.2f} GiB of weights; shorten prompts/outputs, raise tp or use an "
                "instance with more memory"
            )
        kv = PagedKVCache(blocks, kv_block_tokens, prefix_caching)
        contexts.append(
            ReplicaContext(i, kv, replica.step_cost, speculative, rngs[i], record_token_times, record_steps)
        )
    schedulers = [scheduler.build(ctx) for ctx in contexts]
    live = run_events(requests, schedulers, route, progress)
    check_conservation(live, schedulers)

    token_times = None
    if record_token_times:
        token_times = []
        for req in live:
            ticks = schedulers[req.replica].pool.tick_times
            assert ticks is not None and req.token_log is not None
            times: list[float] = []
            for piece in req.token_log:
                times.extend(ticks[piece[0] : piece[1]] if isinstance(piece, tuple) else [piece])
            token_times.append(np.array(times))
        check_token_times(token_times, requests.output_tokens)
    step_log = None
    if record_steps:
        step_log = sorted((r for s in schedulers for r in (s.step_log or ())), key=lambda r: (r.start_s, r.replica))

    def column(attr: str, dtype: type) -> np.ndarray:
        return np.array([getattr(req, attr) for req in live], dtype=dtype)

    arrival, first, finish = column("arrival_s", float), column("first_token_s", float), column("finish_s", float)
    busy = np.array([s.busy_s for s in schedulers])
    preemptions = column("preemptions", np.int64)
    metrics = compute_metrics(
        arrival,
        first,
        finish,
        requests.prompt_tokens,
        requests.output_tokens,
        busy,
        [r.price_per_hour for r in replica_list],
        [r.power_w for r in replica_list],
        int(preemptions.sum()),
        slo,
    )
    return ServeResult(
        model=model,
        replicas=replica_list,
        scheduler=scheduler.name,
        arrival_s=arrival,
        scheduled_s=column("scheduled_s", float),
        first_token_s=first,
        finish_s=finish,
        prompt_tokens=requests.prompt_tokens,
        output_tokens=requests.output_tokens,
        replica=column("replica", np.int64),
        preemptions=preemptions,
        cached_tokens=column("cached_tokens", np.int64),
        busy_s=busy,
        steps=np.array([s.steps for s in schedulers]),
        kv_blocks=np.array([ctx.kv.num_blocks for ctx in contexts]),
        token_times=token_times,
        step_log=step_log,
        slo=slo,
        metrics=metrics,
    )


def check_token_times(token_times: list[np.ndarray], output_tokens: np.ndarray) -> None:
    for rid, (times, wanted) in enumerate(zip(token_times, output_tokens.tolist())):
        if len(times) != wanted or (len(times) > 1 and np.any(np.diff(times) < 0)):
            raise ServeInternalError(f"request {rid} has {len(times)} token times for {wanted} tokens, or out of order")


def _check_stack_steps(
    replicas: list[Replica], scheduler: StaticBatching | ContinuousBatching | ChunkedPrefill, speculative: object
) -> None:
    """A serving stack's step cost (serving_stack.BucketedStepCost) prices prefill-only and decode-only steps: the
    stacks compile context encoding and token generation as separate graphs. Chunked prefill and speculative
    decoding mix prompt and decode tokens in one step, which has no stack shape."""
    if not any(hasattr(r.step_cost, "prefill_step_time_s") for r in replicas):
        return
    if isinstance(scheduler, ChunkedPrefill) or speculative is not None:
        what = "speculative decoding" if speculative is not None else "chunked prefill"
        raise ServeError(
            f"{what} mixes prompt and decode tokens in one step, which the Neuron serving-stack model does not price "
            "(its stacks run context encoding and token generation as separate graphs); serve it at exact shapes "
            "(--serving-stack exact, or stack=None) or with the static or continuous scheduler"
        )
