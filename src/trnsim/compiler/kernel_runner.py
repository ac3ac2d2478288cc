"""Run one library-kernel invocation on the simulated core: values in functional mode, and its cost,
looked up in the kernel cache before anything is scheduled (or traced, in timing mode). Timing runs of long
loops can be extended from short probes (compiler/loop_extrapolation.py, grid_extrapolation.py): opt-in, with
trnsim.estimate(..., extrapolate=True) or TRNSIM_EXTRAPOLATE=1."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import os
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.compiler import grid_extrapolation, kernel_replay, loop_extrapolation, loop_walks_moe
from trnsim.compiler.kernel_cache import KernelCache, KernelCost, default_cache, invocation_key
from trnsim.errors import InputWrittenError, TrnsimError
from trnsim.hw.spec import HardwareSpec
from trnsim.isa.semantics import one_blas_thread
from trnsim.nki.kernel import Kernel, TensorSpec, trace
from trnsim.runtime.profile import ENGINE_KEYS, Profile


def _torch_dtype_name(t: Any) -> str:
    return str(t.dtype).removeprefix("torch.")


def _signature(x: Any) -> Any:
    """The part of an argument that decides the instruction stream: shape and dtype of arrays, else the value."""
    if isinstance(x, TensorSpec):
        return ["T", list(x.shape), dtypes.name(x.dtype)]
    if isinstance(x, np.ndarray):
        return ["T", list(x.shape), dtypes.name(x.dtype)]
    if type(x).__module__.startswith("torch") and hasattr(x, "shape"):
        return ["T", list(x.shape), _torch_dtype_name(x)]
    if isinstance(x, list | tuple):
        return [_signature(v) for v in x]
    if isinstance(x, dict):
        return [[str(k), _signature(v)] for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))]
    if isinstance(x, float | int | str | bool) or x is None:
        return x
    return repr(x)


@functools.cache
def _parameters(fn: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def arguments_signature(kernel: Kernel, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The arguments' part of a cache key, the same however a call spells them: bound to the kernel's parameters
    with the defaults filled in, so linear(x, w) and linear(x, w, None) are one invocation (the kernel sees the
    same values in both) and are simulated once."""
    params = _parameters(kernel.fn)
    if params is not None:
        try:
            bound = params.bind(*args, **kwargs)
        except TypeError:
            pass  # the kernel will say what is wrong when it runs
        else:
            bound.apply_defaults()
            return ["bound", [[name, _signature(value)] for name, value in bound.arguments.items()]]
    return [_signature(args), _signature(kwargs)]


_spec_json_cache: dict[int, tuple[HardwareSpec, str]] = {}


def _spec_json(spec: HardwareSpec) -> str:
    hit = _spec_json_cache.get(id(spec))
    if hit is None or hit[0] is not spec:  # specs are not hashable (lists inside); key by identity
        hit = (spec, spec.model_dump_json())
        _spec_json_cache[id(spec)] = hit
    return hit[1]


def _kernel_id(kernel: Kernel) -> str:
    fn = kernel.fn
    return f"{fn.__module__}.{fn.__qualname__}{list(kernel.grid)}"


def _encode_outputs(x: Any) -> Any:
    if isinstance(x, TensorSpec | np.ndarray):
        return ["T", list(x.shape), dtypes.name(x.dtype)]
    if isinstance(x, list | tuple):
        return [_encode_outputs(v) for v in x]
    return None


def _decode_outputs(x: Any) -> Any:
    if isinstance(x, list) and len(x) == 3 and x[0] == "T":
        return TensorSpec(tuple(x[1]), x[2])
    if isinstance(x, list):
        return tuple(_decode_outputs(v) for v in x)
    return x


def cost_of(profile: Profile) -> KernelCost:
    busy = profile.engine_busy_us
    return KernelCost(
        kernel=profile.kernel_name,
        latency_us=profile.latency_us,
        engine_busy_us={k: float(busy[k]) for k in ENGINE_KEYS},
        flops=int(profile.flops),
        hbm_bytes=int(profile.hbm_bytes),
        instructions=profile.instruction_count,
        sbuf_peak_bytes=int(profile.sbuf_peak_bytes),
        psum_peak_bytes=int(profile.psum_peak_bytes),
        outputs=_encode_outputs(profile.outputs),
    )


# Set by trnsim.estimate(..., extrapolate=...) for the estimate's own kernel invocations.
_EXTRAPOLATE: ContextVar[bool | None] = ContextVar("trnsim_extrapolate", default=None)


def extrapolation_enabled() -> bool:
    """Whether long timing runs are extended from probes: off unless an estimate asks for it or
    TRNSIM_EXTRAPOLATE=1 (opt-in: an extended cost is within ~1% of the full one, not equal to it, so a
    series of sizes that switches between the two need not be monotone; serving step grids rely on that)."""
    asked = _EXTRAPOLATE.get()
    return asked if asked is not None else os.environ.get("TRNSIM_EXTRAPOLATE", "0") == "1"


@contextlib.contextmanager
def extrapolation(enabled: bool | None) -> Iterator[None]:
    """Within the block, kernel invocations are extended (True), simulated in full (False) or, with None, as the
    enclosing block says (outside any block: the environment)."""
    if enabled is None:  # inherit: an estimate's default must not undo a caller's choice around it
        yield
        return
    token = _EXTRAPOLATE.set(enabled)
    try:
        yield
    finally:
        _EXTRAPOLATE.reset(token)


@functools.cache
def _extrapolation_fingerprint() -> str:
    """Extended costs are cached apart from full ones, keyed by the extrapolation's own source too."""
    h = hashlib.sha256()
    for module in (loop_extrapolation, grid_extrapolation, loop_walks_moe):
        h.update(Path(module.__file__ or "").read_bytes())
    return h.hexdigest()[:16]


def run_kernel(
    kernel: Kernel,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    spec: HardwareSpec,
    functional: bool,
    cache: KernelCache | None = None,
    extrapolate: bool | None = None,
) -> tuple[Any, KernelCost]:
    """Outputs (TensorSpecs in timing mode) and the invocation's cost on one core of `spec`.

    extrapolate: extend a long loop from three short probes in timing mode (default: extrapolation_enabled()).
    """
    cache = cache or default_cache()
    key = invocation_key(_kernel_id(kernel), arguments_signature(kernel, args, kwargs), _spec_json(spec))
    cost = cache.get(key, count=False)
    if cost is None and not functional and (extrapolation_enabled() if extrapolate is None else extrapolate):
        extended = extended_cost(kernel, args, kwargs, spec, cache)  # counts its own hit or miss
        if extended is not None:
            return extended
    cache.record(hit=cost is not None)
    if cost is not None and not functional:
        return _decode_outputs(cost.outputs), cost
    # A functional run's tile matmuls all run on one BLAS thread (isa/semantics.py): set once for the whole run.
    with one_blas_thread() if functional else contextlib.nullcontext():
        if cost is not None:  # functional, its cost known: values from a replay of an earlier run (kernel_replay.py)
            done, outputs = kernel_replay.replayed(key, kernel, args, kwargs, spec)
            if done:
                return outputs, cost
        if functional:
            traced = _functional_trace(key, kernel, args, kwargs, spec)
        else:
            traced = trace(kernel, args, kwargs, target=spec, mode="timing", cores=1)
    if cost is None:
        cost = cost_of(traced.profile())
        cache.put(key, cost)
    return traced.outputs(), cost


# Invocation keys whose kernels wrote an input argument: traced with copies of their inputs from then on.
_WRITES_INPUTS: set[str] = set()


def _functional_trace(
    key: str, kernel: Kernel, args: tuple[Any, ...], kwargs: dict[str, Any], spec: HardwareSpec
) -> Any:
    """A full functional trace whose HBM inputs are the argument arrays themselves, write-protected (no copy of,
    e.g., an embedding's table on every call); a kernel that writes an input is traced again with copies."""
    if key not in _WRITES_INPUTS:
        try:
            return trace(kernel, args, kwargs, target=spec, mode="functional", cores=1, read_only_inputs=True)
        except InputWrittenError:
            _WRITES_INPUTS.add(key)
    return trace(kernel, args, kwargs, target=spec, mode="functional", cores=1)


def extended_cost(
    kernel: Kernel, args: tuple[Any, ...], kwargs: dict[str, Any], spec: HardwareSpec, cache: KernelCache
) -> tuple[Any, KernelCost] | None:
    """The cost of a long GEMM grid or loop extended from short probes (grid_extrapolation, loop_extrapolation),
    or None (simulate it in full)."""
    kernel_id = _kernel_id(kernel)
    grid = grid_extrapolation.find_grid(kernel_id, kernel.name, args, kwargs, spec)
    loop = loop_extrapolation.find_loop(kernel_id, kernel.name, args, kwargs, spec, loop_walks_moe.RULES)
    if grid is None and loop is None:
        return None
    key = invocation_key(
        f"{kernel_id}#extended:{_extrapolation_fingerprint()}",
        arguments_signature(kernel, args, kwargs),
        _spec_json(spec),
    )
    cost = cache.get(key, count=False)
    if cost is None:
        cost = None if grid is None else grid_cost(kernel, grid, spec)
        if cost is None and loop is not None:
            cost = _probe_and_extend(kernel, loop, spec)
        if cost is None:
            return None  # no steady state within the probes: simulate it in full
        cache.put(key, cost)
        cache.record(hit=False)
    else:
        cache.record(hit=True)
    return _decode_outputs(cost.outputs), cost


def _probe(kernel: Kernel, probe: tuple[tuple[Any, ...], dict[str, Any]], context: Any, spec: HardwareSpec) -> Any:
    """(outputs, cost) of one probe, traced and scheduled directly (never cached: see loop_extrapolation)."""
    with context():
        traced = trace(kernel, probe[0], probe[1], target=spec, mode="timing", cores=1)
        return traced.outputs(), cost_of(traced.profile())


def grid_cost(kernel: Kernel, grid: grid_extrapolation.Grid, spec: HardwareSpec) -> KernelCost | None:
    """The GEMM's cost extended over its (strip, block) grid from five probes, or None if the check misses."""
    try:
        probed = [_probe(kernel, grid.resize(i, j), grid.probe_context, spec) for i, j in grid.probes]
    except TrnsimError:
        return None
    fields = grid_extrapolation.extend_grid(grid, [c for _, c in probed])
    if fields is None:
        return None
    out, first = probed[0]
    return KernelCost(kernel=first.kernel, **fields, outputs=_encode_outputs(grid.outputs(out)))


def _probe_and_extend(kernel: Kernel, loop: loop_extrapolation.Loop, spec: HardwareSpec) -> KernelCost | None:
    """Trace and schedule the loop's probes, window after window, until one is in steady state."""
    probed: dict[int, tuple[Any, KernelCost]] = {}  # iterations -> (outputs, cost), shared by the windows
    for counts in loop.probe_sets():
        try:
            for n in counts:
                if n not in probed:
                    probed[n] = _probe(kernel, loop.resize(n), loop.probe_context, spec)
        except TrnsimError:
            return None  # a probe the kernel rejects: the full run reports (or runs) the real shapes
        fields = loop_extrapolation.extend(loop, counts, [probed[n][1] for n in counts])
        if fields is not None:
            out, first = probed[counts[0]]
            return KernelCost(kernel=first.kernel, **fields, outputs=_encode_outputs(loop.outputs(out)))
    return None
