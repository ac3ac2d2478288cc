"""Kernel invocations that differ only in a loop count: simulate three short versions, extend to the full count.

A library kernel at model scale repeats one body over an outer loop: flash attention over (batch, KV head)
groups, a batched matmul over its batch, the GEMM over strips of stationary rows or blocks of moving
columns.
Once the pipeline is full every iteration costs about the same, so the invocation's cost is affine in the loop
count. Three probes of a, a + s and a + 2s iterations (a >= 2, past the pipeline's fill; s = a for loops of
small iterations, whose cost per iteration wobbles, s = 1 for GEMM strips and blocks) give two slopes; where they
agree within SLOPE_TOLERANCE the cost of n iterations is cost(a + 2s) + (n - a - 2s) * slope, with the slope over
the whole probed stretch. Where they do not (no steady state yet), the window moves one step on (a + s, a + 2s,
a + 3s), one more probe, until the probes would pass PROBE_SHARE of the loop: then the invocation is simulated in
full. Latency, engine busy time, FLOPs, HBM bytes and the instruction count are
extended; SBUF/PSUM peaks are the probes' (the loop reuses its buffers). tests/compiler/test_fast_estimate.py
measures the error against full simulation.

Only timing runs of shapes alone (TensorSpec arguments) are extended, and only where the probes are at most half
the work. A GEMM's probes are blocked with the full shape's plan (kernels/matmul.py PLAN_PROBLEM): the
library's planner would block a small GEMM differently, and a different blocking is a different loop body.
Probes are traced directly, never cached: a probe's cost is not that of an invocation of its own shape.
Everything else is simulated in full.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from trnsim import dtypes
from trnsim.errors import TrnsimError
from trnsim.hw.spec import HardwareSpec
from trnsim.nki.kernel import TensorSpec

FIRST_PROBE = 2  # the fewest iterations in the first probe: one to fill the pipeline, one in steady state
PROBE_SHARE = 0.5  # all probes tried may cost at most this share of the full loop's iterations
SLOPE_TOLERANCE = 0.02  # the two probe slopes may differ by this much of their mean: the error stays below ~1%
# A GEMM walk whose iterations are shorter than the DMA look-ahead starts its probes this many look-aheads of
# k-steps in: measured on trn2, decode-shaped linears settle after 128-512 k-steps at 64 ahead (_short_iterations)
SETTLE_LOOKAHEADS = 8
# A single-strip matmul's blocks are probed this many apart (3, 6, 9 blocks): its PSUM evacuations alternate
# between VectorE and ScalarE by expected finish time, and that split settles over a few blocks (probes of 2, 3, 4
# blocks put 5% of VectorE's busy time on ScalarE; measured on the Llama-3 LM head, trn2)
BLOCK_SPACING = 3


@dataclass(frozen=True)
class Loop:
    """An invocation seen as `count` iterations of one loop, and how to build it with fewer."""

    count: int
    resize: Callable[[int], tuple[tuple[Any, ...], dict[str, Any]]]  # args, kwargs with n iterations
    outputs: Callable[[Any], Any]  # the full invocation's outputs (TensorSpecs) from a probe's
    first: int = FIRST_PROBE  # a: the probes run a, a + step and a + 2 step iterations
    step: int = FIRST_PROBE
    # probes a, 2a, 4a instead: iterations shorter than the pipeline's look-ahead (see _short_iterations)
    doubling: bool = False
    # entered around each probe's trace (a GEMM's: plan it as the full shape)
    probe_context: Callable[[], contextlib.AbstractContextManager[Any]] = field(default=contextlib.nullcontext)

    @property
    def probes(self) -> tuple[int, int, int]:
        """The first (cheapest) set of probes."""
        return _probes(self.first, self.step, self.doubling)

    def probe_sets(self) -> Iterator[tuple[int, int, int]]:
        """Sets of probes to try in turn, each one step further than the one before (a pipeline that has not
        settled within the first iterations may a few later): (a, a+s, a+2s), (a+s, a+2s, a+3s), ... or, doubling,
        (a, 2a, 4a), (2a, 4a, 8a), ...; each set adds one probe, and all probes together stay within PROBE_SHARE
        of the loop."""
        first = self.first
        spent = sum(self.probes[:2])
        while True:
            probes = _probes(first, self.step, self.doubling)
            spent += probes[2]
            if spent > PROBE_SHARE * self.count:
                return
            yield probes
            first = probes[1]


def _probes(first: int, step: int, doubling: bool = False) -> tuple[int, int, int]:
    if doubling:
        return (first, 2 * first, 4 * first)
    return (first, first + step, first + 2 * step)


def _worth_it(count: int, first: int, step: int, doubling: bool = False) -> bool:
    return sum(_probes(first, step, doubling)) <= PROBE_SHARE * count


def _short_iterations(plan: Any, steps_per_iteration: int) -> bool:
    """Whether the GEMM pipeline's DMA look-ahead (plan.dma_ahead k-steps) spans a whole iteration or more.

    Then the loads of several iterations are in flight at once and the cost per iteration wobbles for many
    iterations before it settles ([14336, 4096] decode linear on trn2: 2.94, 3.48, 2.94, 3.27 us per strip over
    strips 4-16, 3.10 after; probes of 4-6 strips were 5% low). Such walks probe a, 2a, 4a, from SETTLE_LOOKAHEADS
    look-aheads in ([16, 32768] x [2048]: 1.51 us per strip over the first 8, 1.68 beyond 16)."""
    return int(plan.dma_ahead) >= steps_per_iteration


def _strip_walk(
    full: int, unit: int, build: Callable[[int], tuple[tuple[Any, ...], dict]], plan: Any, strip_steps: int
) -> Loop | None:
    """A GEMM walk over strips of `strip_steps` k-steps each (doubling and settled probes when they are short)."""
    if not _short_iterations(plan, strip_steps):
        return walk(full, unit, build)
    first = max(FIRST_PROBE, math.ceil(SETTLE_LOOKAHEADS * int(plan.dma_ahead) / max(1, strip_steps)))
    return walk(full, unit, build, doubling=True, first=first)


def spec_like(shape: tuple[int, ...], like: TensorSpec) -> TensorSpec:
    return TensorSpec(tuple(int(s) for s in shape), like.dtype)


def all_specs(values: Any) -> bool:
    """True when no argument carries values (arrays): only then is the invocation a shapes-only timing run."""
    if isinstance(values, dict):
        return all(all_specs(v) for v in values.values())
    if isinstance(values, list | tuple):
        return all(all_specs(v) for v in values)
    return not hasattr(values, "shape") or isinstance(values, TensorSpec)


def bind_arguments(names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """Arguments by name (None if there are more positional arguments than names)."""
    if len(args) > len(names):
        return None
    bound = dict(zip(names, args))
    for k, v in kwargs.items():
        if k not in names or k in bound:
            return None
        bound[k] = v
    return bound


def with_output_shape(shape: tuple[int, ...]) -> Callable[[Any], Any]:
    def outputs(probe_out: Any) -> Any:
        return TensorSpec(shape, probe_out.dtype) if isinstance(probe_out, TensorSpec) else None

    return outputs


# -- flash attention: (batch, KV head) groups -----------------------------------------------------------------
def _flash_attention(bound: dict[str, Any], spec: HardwareSpec) -> Loop | None:
    q, k, v = bound.get("q"), bound.get("k"), bound.get("v")
    if not all(isinstance(t, TensorSpec) and len(t.shape) == 4 for t in (q, k, v)):
        return None
    assert isinstance(q, TensorSpec) and isinstance(k, TensorSpec) and isinstance(v, TensorSpec)
    batch, heads, s_q, d = q.shape
    _, kv_heads, s_kv, _ = k.shape
    if kv_heads < 1 or heads % kv_heads or k.shape[0] != batch or tuple(k.shape) != tuple(v.shape):
        return None  # let the kernel report it
    group = heads // kv_heads
    rest = {n: x for n, x in bound.items() if n not in ("q", "k", "v")}

    def resize(n: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        # groups run one after another in (batch, KV head) order; n of them in one batch is the same loop
        qn = spec_like((1, n * group, s_q, d), q)
        kn = spec_like((1, n, s_kv, d), k)
        return (qn, kn, spec_like((1, n, s_kv, d), v)), rest

    if not _worth_it(batch * kv_heads, FIRST_PROBE, FIRST_PROBE):
        return None
    return Loop(batch * kv_heads, resize, with_output_shape(tuple(q.shape)))


# -- GEMMs: blocked like the full shape, walked over strips, blocks or batches -------------------------------------
def gemm_plan(
    spec: HardwareSpec, rows: int, cols: int, k: int, s: TensorSpec, v: TensorSpec, out: Any, v_row_major: bool
) -> Any:
    """The full GEMM's blocking, as kernels/matmul.py plans it (only its strip height and block width are used
    here, to size the iterations the probes walk)."""
    from trnsim.kernels._gemm_plan import GemmProblem, plan_gemm

    double_row = s.dtype in dtypes.FP8_DTYPES and bool(spec.core.tensor.fp8_double_row)
    problem = GemmProblem(
        rows=rows,
        cols=cols,
        k=k,
        in_bytes=max(s.dtype.itemsize, v.dtype.itemsize),
        out_bytes=out.itemsize,
        v_row_major=v_row_major,
        double_row=double_row,
        fp32=s.dtype == dtypes.float32,
    )
    return plan_gemm(problem, spec.core)


def planned_as(**full: Any) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """A probe context in which the GEMM kernels plan every problem as the full one (`full`: its dims)."""

    @contextlib.contextmanager
    def context() -> Iterator[None]:
        from trnsim.kernels.matmul import PLAN_PROBLEM

        token = PLAN_PROBLEM.set(lambda problem: dataclasses.replace(problem, **full))
        try:
            yield
        finally:
            PLAN_PROBLEM.reset(token)

    return context


def out_dtype_of(a: TensorSpec, out_dtype: Any) -> Any:
    if out_dtype is None:
        return dtypes.bfloat16 if a.dtype in dtypes.FP8_DTYPES else a.dtype
    try:
        return dtypes.resolve(out_dtype)
    except TrnsimError:
        return None


def walk(
    full: int,
    unit: int,
    build: Callable[[int], tuple[tuple[Any, ...], dict]],
    step: int | None = 1,
    doubling: bool = False,
    first: int = FIRST_PROBE,
) -> Loop | None:
    """A dimension of `full` elements walked in iterations of `unit`. The ragged rest (if any) stays in every
    probe, so that the last, partial iteration is the same one. step None spaces the probes a apart (for short
    iterations, whose cost wobbles); doubling probes a, 2a, 4a from a = first (_short_iterations). The caller
    fills in outputs and probe_context."""
    if unit <= 0:
        return None
    count = full // unit
    rest = full - count * unit
    spacing = step or FIRST_PROBE
    if not _worth_it(count, first, spacing, doubling):
        return None
    return Loop(count, lambda n: build(rest + n * unit), lambda out: None, first, spacing, doubling)


def _matmul(bound: dict[str, Any], spec: HardwareSpec) -> Loop | None:
    a, b = bound.get("a"), bound.get("b")
    if not (isinstance(a, TensorSpec) and isinstance(b, TensorSpec) and len(a.shape) == 2 and len(b.shape) == 2):
        return None
    m, k = a.shape
    n = b.shape[1]
    out = out_dtype_of(a, bound.get("out_dtype"))
    if out is None or b.shape[0] != k:
        return None
    plan = gemm_plan(spec, m, n, k, a, b, out, False)
    p = int(spec.core.sbuf.partitions)
    rest = {x: y for x, y in bound.items() if x not in ("a", "b")}
    # a's rows are the stationary side, walked in strips. Not b's columns (the moving side's blocks) where there
    # are several strips: a block costs more once a strip has more than a few (see grid_extrapolation), so
    # few-block probes under-estimate. A single strip (a decode step's tokens against a wide weight, e.g. an LM
    # head) has only the blocks to walk, BLOCK_SPACING apart: measured within 0.2% of full simulation on trn1/trn2
    # LM-head shapes (/work/briefs/bench_E.md; tests/compiler/test_fast_estimate.py).
    strip_steps = math.ceil(n / plan.v_block) * math.ceil(k / p)
    by_rows = _strip_walk(m, plan.strip_tiles * p, lambda rows: ((spec_like((rows, k), a), b), rest), plan, strip_steps)
    by_blocks = None
    if m <= plan.strip_tiles * p:
        block_steps = math.ceil(k / p)

        def blocks(cols: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
            return (a, spec_like((k, cols), b)), rest

        by_blocks = (
            _strip_walk(n, plan.v_block, blocks, plan, block_steps)
            if _short_iterations(plan, block_steps)
            else walk(n, plan.v_block, blocks, step=BLOCK_SPACING, first=BLOCK_SPACING)
        )
    return cheaper(by_rows, by_blocks, (m, n), planned_as(rows=m, cols=n))


def _batched_matmul(bound: dict[str, Any], spec: HardwareSpec) -> Loop | None:
    a, b = bound.get("a"), bound.get("b")
    if not (isinstance(a, TensorSpec) and isinstance(b, TensorSpec) and len(a.shape) == 3 and len(b.shape) == 3):
        return None
    nb, m, k = a.shape
    n = b.shape[2]
    if b.shape[0] != nb or b.shape[1] != k:
        return None
    rest = {x: y for x, y in bound.items() if x not in ("a", "b")}
    # every batch is one job through the same pipeline; a job can be short, so the probes are spaced wider
    found = walk(nb, 1, lambda jobs: ((spec_like((jobs, m, k), a), spec_like((jobs, k, n), b)), rest), step=None)
    return cheaper(found, None, (nb, m, n), planned_as(jobs=nb))


@dataclass(frozen=True)
class LinearProblem:
    """A linear kernel invocation on shapes alone: x [..., k] @ w[n, k].T over m token rows, and its GEMM plan."""

    x: TensorSpec
    w: TensorSpec
    bias: TensorSpec | None
    residual: TensorSpec | None
    m: int
    n: int
    k: int
    plan: Any
    rest: dict[str, Any]  # the other arguments, passed through to every probe


def linear_problem(bound: dict[str, Any], spec: HardwareSpec) -> LinearProblem | None:
    """The linear invocation's shapes when they are consistent (else None: no walk, full simulation)."""
    x, w = bound.get("x"), bound.get("w")
    bias, residual = bound.get("bias"), bound.get("residual")
    if not (isinstance(x, TensorSpec) and isinstance(w, TensorSpec) and len(x.shape) >= 1 and len(w.shape) == 2):
        return None
    if not all(t is None or isinstance(t, TensorSpec) for t in (bias, residual)):
        return None
    k = x.shape[-1]
    n = w.shape[0]
    m = math.prod(x.shape[:-1])
    out = out_dtype_of(x, bound.get("out_dtype"))
    if out is None or w.shape[1] != k or m == 0:
        return None
    if residual is not None and tuple(residual.shape) != (*x.shape[:-1], n):
        return None
    if bias is not None and tuple(bias.shape) != (n,):
        return None
    plan = gemm_plan(spec, n, m, k, w, x, out, True)
    rest = {x_: y for x_, y in bound.items() if x_ not in ("x", "w", "bias", "residual")}
    return LinearProblem(x, w, bias, residual, m, n, k, plan, rest)


def _linear(bound: dict[str, Any], spec: HardwareSpec) -> Loop | None:
    lp = linear_problem(bound, spec)
    if lp is None:
        return None
    x, w, bias, residual, m, n, k, plan, rest = (lp.x, lp.w, lp.bias, lp.residual, lp.m, lp.n, lp.k, lp.plan, lp.rest)
    p = int(spec.core.sbuf.partitions)

    def tokens(cols: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        res = None if residual is None else spec_like((cols, n), residual)
        return (spec_like((cols, k), x), w, bias), {**rest, "residual": res}

    def features(rows: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        res = None if residual is None else spec_like((m, rows), residual)
        b = None if bias is None else spec_like((rows,), bias)
        return (spec_like((m, k), x), spec_like((rows, k), w), b), {**rest, "residual": res}

    # Tokens are the moving side (blocks of plan.v_block columns), features the stationary strips.
    by_tokens = walk(m, plan.v_block, tokens)
    strip_steps = math.ceil(m / plan.v_block) * math.ceil(k / p)  # k-steps of one strip (fewer if double-row)
    by_features = _strip_walk(n, plan.strip_tiles * p, features, plan, strip_steps)
    return cheaper(by_tokens, by_features, (*x.shape[:-1], n), planned_as(rows=n, cols=m))


def cheaper(
    one: Loop | None,
    other: Loop | None,
    out_shape: tuple[int, ...],
    probe_context: Callable[[], contextlib.AbstractContextManager[Any]],
) -> Loop | None:
    """The walk whose probes are the smaller share of the work, with the full invocation's output shape."""
    found = min((f for f in (one, other) if f is not None), key=lambda f: sum(f.probes) / f.count, default=None)
    if found is None:
        return None
    return dataclasses.replace(found, outputs=with_output_shape(out_shape), probe_context=probe_context)


Rule = Callable[[dict[str, Any], HardwareSpec], Loop | None]
# kernel name -> (its parameter names, the rule that finds its loop); loop_walks_moe.py has more
RULES: dict[str, tuple[tuple[str, ...], Rule]] = {
    "flash_attention": (("q", "k", "v", "causal", "scale"), _flash_attention),
    "matmul": (("a", "b", "out_dtype"), _matmul),
    "batched_matmul": (("a", "b", "out_dtype"), _batched_matmul),
    "linear": (("x", "w", "bias", "activation", "residual", "out_dtype"), _linear),
}


def find_loop(
    kernel_id: str,
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    spec: HardwareSpec,
    rules: dict[str, tuple[tuple[str, ...], Rule]] | None = None,
) -> Loop | None:
    """The outer loop of a library-kernel invocation worth extending, or None (simulate it in full). rules: by
    kernel name (default RULES)."""
    rules = RULES if rules is None else rules
    if not kernel_id.startswith("trnsim.kernels.") or name not in rules or not all_specs((args, kwargs)):
        return None
    names, rule = rules[name]
    bound = bind_arguments(names, args, kwargs)
    if bound is None:
        return None
    try:
        return rule(bound, spec)
    except TrnsimError:
        return None  # shapes the kernel would reject: its own error comes from the full run


def extend(loop: Loop, probes: tuple[int, int, int], costs: list[Any]) -> dict[str, Any] | None:
    """The KernelCost fields of the full loop from the costs of `probes` (iteration counts a, a + s, a + 2s), or
    None when the probes are not in a steady state (their two slopes differ by more than SLOPE_TOLERANCE)."""
    n1, n2, n3 = probes
    c1, c2, c3 = costs
    first_slope = (c2.latency_us - c1.latency_us) / (n2 - n1)
    second_slope = (c3.latency_us - c2.latency_us) / (n3 - n2)
    slope = (c3.latency_us - c1.latency_us) / (n3 - n1)
    if slope <= 0 or abs(second_slope - first_slope) > SLOPE_TOLERANCE * slope:
        return None
    stretches = (loop.count - n3) / (n3 - n1)  # in units of the probed stretch

    def line(lo: float, hi: float) -> float:
        return hi + stretches * (hi - lo)

    def whole(lo: int, hi: int) -> int:
        return round(line(lo, hi))

    return {
        "latency_us": line(c1.latency_us, c3.latency_us),
        "engine_busy_us": {
            e: max(0.0, line(c1.engine_busy_us[e], c3.engine_busy_us.get(e, 0.0))) for e in c1.engine_busy_us
        },
        "flops": whole(c1.flops, c3.flops),
        "hbm_bytes": whole(c1.hbm_bytes, c3.hbm_bytes),
        "instructions": whole(c1.instructions, c3.instructions),
        "sbuf_peak_bytes": max(c.sbuf_peak_bytes for c in costs),
        "psum_peak_bytes": max(c.psum_peak_bytes for c in costs),
    }
