"""Step latencies of a real model from the compiler's estimate (Trainium-class targets) or the GPU model.

A vLLM-style step feeds `new_tokens` = N tokens of `batch` = B sequences whose mean KV length after the step is
`context` = C. The step decomposes into parts that each depend on fewer than three of (B, N, C):

    step(B, N, C) = overhead + dense(N) + lm_head(B) - lm_head(1) + layers x [decode(B, C) + prefill(N - B, C)]

- dense(N): every op but attention, for N tokens packed into one sequence: linears, norms, rotary and
  elementwise ops, the embedding and the tensor-parallel collectives. Only N matters, since they work token
  by token. It is `trnsim.estimate` of the rank model (logits for the last token only) with the attention
  ops taken out of its profile; on a GPU target the same graph priced by the GPU model.
- lm_head(B): the logits of the last token of each sequence (what serving engines compute); dense(N) already
  holds those of one token.
- decode(B, C): one query token per sequence over C keys: the library decode_attention kernel
  on the simulated core (GpuModel.attention_time_s on GPUs). Sequences stream through the kernel one after
  another, so beyond 8 sequences it is extended linearly from the simulated 4- and 8-sequence runs.
- prefill(P, C): the other P = N - B tokens are prompt chunks. They are split into ceil(P / C)
  sequences of P / k queries each, the last queries of C keys (causal); the flash-attention kernel's time
  per (query, key) pair, simulated once per rank shape, prices their pairs.
- overhead: the per-step host time from step_overhead.toml (with its source).

So a grid of |B| x |N| x |C| points costs |N| estimates and about 2|C| decode-kernel runs, not one estimate per
point. Axes are powers of 2 (batch) and 4 (tokens, context) up to the bounds. The table, and dense(N) on its
own, are cached on disk (StepLatencyGrid's SQLite store) under a key naming model, target, spec hash, tp,
instance, dtype and the simulator's fingerprint, and interpolated between grid points.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from trnsim.compiler.kernel_runner import extrapolation
from trnsim.compiler.unpriced import unpriced_ops
from trnsim.gpu.spec import GpuSpec
from trnsim.hw.spec import HardwareSpec
from trnsim.serve.errors import ServeError
from trnsim.serve.step_components import DTYPES, SDPA, StepComponents, prefill_pairs
from trnsim.serve.step_components_ep import EPStepComponents
from trnsim.serve.step_grid import StepLatencyGrid
from trnsim.serve.step_grid_store import StepLatencyStore, default_cache_path

__all__ = ["DTYPES", "EstimatedStepCost", "StepComponents", "estimated_step_cost", "prefill_pairs"]

# Grid axes: 1, r, r^2, ... below the bound, then the bound rounded up to a power of two. Fixed points (rather
# than points spread between 1 and each bound) let tables built for different workloads share cached points.
GRID_RATIO = {"batches": 2, "new_tokens": 4, "contexts": 4}


@dataclass
class EstimatedStepCost:
    """A StepCost whose table came from the compiler's estimate (or the GPU model), interpolated."""

    grid: StepLatencyGrid
    key: str
    target: str
    tp: int
    evaluated: int  # grid points computed in this build (0 when all came from the cache)
    estimate_calls: int  # trnsim.estimate runs this build needed
    build_seconds: float
    components: Callable[[], StepComponents] = field(repr=False)

    def step_time_s(self, batch: int, new_tokens: int, context: float) -> float:
        return self.grid.step_time_s(batch, new_tokens, context)

    def direct_step_time_s(self, batch: int, new_tokens: int, context: float) -> float:
        """The step computed from its parts without interpolation (runs estimates if not done yet)."""
        return self.components().step_time_s(batch, new_tokens, context)


def _axis(bound: int, ratio: int) -> list[int]:
    top = 1 << (bound - 1).bit_length()  # the bound rounded up to a power of two
    axis = [1]
    while axis[-1] * ratio < top:
        axis.append(axis[-1] * ratio)
    return [*axis, top]


def _axes(max_batch: int, max_context: int, max_new_tokens: int) -> tuple[list[int], list[int], list[int]]:
    for name, value in (("max_batch", max_batch), ("max_context", max_context), ("max_new_tokens", max_new_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ServeError(f"{name} must be an integer >= 2 (the grid needs two points), got {value!r}")
    return (
        _axis(max_batch, GRID_RATIO["batches"]),
        _axis(max_new_tokens, GRID_RATIO["new_tokens"]),
        _axis(max_context, GRID_RATIO["contexts"]),
    )


def estimated_step_cost(
    model: str,
    target: str | HardwareSpec | GpuSpec = "trn2",
    tp: int = 1,
    instance: str | None = None,
    *,
    dtype: str = "bfloat16",
    weight_format: str = "bf16",
    max_batch: int = 256,
    max_context: int = 32768,
    max_new_tokens: int = 8192,
    cache: bool = True,
    progress: bool = False,
    ep: int = 1,
) -> EstimatedStepCost:
    """A StepCost for `model` (preset name or config.json path) served on `target` with tensor parallelism tp.

    target: a Trainium-class preset name, a (possibly modified) HardwareSpec, a GPU preset ("h100", "h200",
    "b200") or GpuSpec. instance: the instance whose topology carries the collectives (Trainium; default the smallest
    that fits). The grid spans batch 1..max_batch, new tokens 1..max_new_tokens and context 1..max_context
    (geometric); beyond it the grid extrapolates linearly with a warning. cache: reuse/extend the table in the
    user cache (serve.default_cache_path()). progress: a progress bar while grid points are computed.
    weight_format: "bf16", "fp8" or "fp4" (GPUs with FP4 tensor cores): the weight matmuls priced in that format
    as `trnsim estimate --dtype` does (compiler/dtype_estimate.py); each format has its own cached table.
    ep > 1: a mixture-of-experts replica of ep expert-parallel groups of tp ranks (serve/step_components_ep.py).
    """
    start = time.perf_counter()
    batches, tokens, contexts = _axes(max_batch, max_context, max_new_tokens)
    parts = (
        StepComponents(model, target, tp, instance, dtype, weight_format)
        if ep == 1
        else _ep_parts(model, target, tp, ep, instance, dtype, weight_format)
    )
    key = parts.cache_key()
    cache_path = default_cache_path() if cache else None
    missing = len(batches) * len(tokens) * len(contexts)
    if cache_path is not None:
        parts.dense_store = StepLatencyStore(cache_path)
        known = parts.dense_store.load(key)
        missing = sum(1 for b in batches for n in tokens for c in contexts if (b, n, float(c)) not in known)
    if missing:
        _dense_parts(parts, tokens)
    fn: Callable[[int, int, float], float] = parts.step_time_s
    if progress and missing:
        fn = _ProgressStep(parts, missing)
    try:
        with extrapolation(True):  # the LM head over batches too: its walk is within 1% as well
            grid = StepLatencyGrid(fn, batches, tokens, contexts, cache_path=cache_path, key=key)
    finally:
        stop = getattr(fn, "stop", None)
        if stop is not None:
            stop()
    return EstimatedStepCost(
        grid=grid,
        key=key,
        target=parts.target_name,
        tp=tp,
        evaluated=grid.evaluated,
        estimate_calls=parts.estimate_calls,
        build_seconds=time.perf_counter() - start,
        components=lambda: parts,
    )


def _ep_parts(
    model: str, target: str | HardwareSpec | GpuSpec, tp: int, ep: int, instance: str | None, dtype: str, fmt: str
) -> StepComponents:
    if isinstance(target, GpuSpec):
        raise ServeError("expert-parallel serving is priced on Trainium-class targets (trn1, trn2, trn3, inf2)")
    return EPStepComponents(model, target, ep, instance, dtype, fmt, tp=tp)  # ep groups of tp ranks


def _dense_parts(parts: StepComponents, tokens: list[int]) -> None:
    """dense(N) for every new-tokens point, before the grid asks for them (dense_s keeps them).

    Two shortcuts, each measured or exact: long kernel loops are extended from short probes (within 1% of full
    simulation, tests/compiler/test_fast_estimate.py; the points are 2-4x apart in N, so that error cannot
    reorder them; the grid's other kernels are extended too), and the attention op's kernel is not simulated,
    since dense_s leaves its time out anyway (compiler/unpriced.py). Skipping points where dense(N) looks affine
    was tried and measured: not exact enough (BENCHMARKS.md, issue 12, helper E: Llama-3.1-8B on trn2, tp=1,
    the line through dense(1024) and dense(8192) passes 3.9% below dense(4096))."""
    with extrapolation(True), unpriced_ops({SDPA}):
        for n in tokens:
            parts.dense_s(n)


class _ProgressStep:
    """Wraps the step function with a rich progress bar over the grid points still to compute."""

    def __init__(self, parts: StepComponents, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.parts = parts
        self.bar = Progress(
            TextColumn(f"step latencies of {parts.model_name} on {parts.target_name} (tp={parts.tp})"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
            console=Console(stderr=True),
        )
        self.task = self.bar.add_task("grid", total=total)
        self.bar.start()

    def __call__(self, batch: int, new_tokens: int, context: float) -> float:
        value = self.parts.step_time_s(batch, new_tokens, context)
        self.bar.advance(self.task)
        return value

    def stop(self) -> None:
        self.bar.stop()
