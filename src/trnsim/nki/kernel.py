"""Kernel entry points: nki.jit, kernel[grid](...), nki.simulate, trnsim.nki.profile, and the legacy
nki.simulate_kernel / nki.benchmark / nki.baremetal.

A launch copies the arguments into HBM, traces the kernel once per SPMD program (programs spread over
the chip's physical cores), then schedules the instruction stream to get its timeline.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.errors import UsageError, warning_category
from trnsim.hw.spec import HardwareSpec
from trnsim.nki.argument_dtypes import exact_kernel_array, kernel_dtype
from trnsim.nki.context import TraceContext, activate, maybe_current, user_location
from trnsim.nki.indexing import NcDim
from trnsim.nki.kernel_errors import internal_errors_reported
from trnsim.nki.target import get_target_spec
from trnsim.nki.tensor import NkiTensor
from trnsim.nki.versions import older_call
from trnsim.runtime.profile import Profile
from trnsim.sim.machine import Machine, Mode
from trnsim.sim.memory import MemoryKind
from trnsim.sim.scheduler import schedule
from trnsim.torch_arrays import numpy_to_torch, torch_to_numpy


@dataclass(frozen=True)
class TensorSpec:
    """A kernel argument with a shape and dtype but no values (timing-only runs)."""

    shape: tuple[int, ...]
    dtype: Any = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "dtype", dtypes.resolve(self.dtype))


class Kernel:
    """A traced NKI kernel; `kernel[grid]` sets its SPMD launch grid."""

    def __init__(
        self, fn: Callable[..., Any], grid: tuple[int, ...] = (1,), platform_target: str | None = None
    ) -> None:
        self.fn = fn
        self.grid = grid
        self.platform_target = platform_target  # NKI <= 0.2's `@nki.jit(platform_target=...)`
        self.benchmark_result: BenchmarkResult | None = None
        functools.update_wrapper(self, fn)

    @property
    def name(self) -> str:
        return getattr(self.fn, "__name__", "kernel")

    def __getitem__(self, grid: Any) -> Kernel:
        dims = tuple(grid) if isinstance(grid, tuple | list) else (grid,)
        if not all(isinstance(x, int | np.integer) and not isinstance(x, bool) for x in dims):
            raise UsageError(f"launch grid must be positive integers, got {grid!r}", user_location())
        g = tuple(x if isinstance(x, NcDim) else int(x) for x in dims)  # NcDim: an int that marks core dims
        if not g or any(x < 1 for x in g):
            raise UsageError(f"launch grid must be positive integers, got {grid!r}", user_location())
        return Kernel(self.fn, g, self.platform_target)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if maybe_current() is not None:  # a kernel calling another kernel: trace it inline
            return self.fn(*args, **kwargs)
        return simulate(self)(*args, **kwargs)


def jit(fn: Callable[..., Any] | None = None, mode: str = "auto", platform_target: str | None = None, **_: Any) -> Any:
    """Decorator: `@nki.jit` or `@nki.jit(mode=...)`.

    `platform_target` (NKI 0.2 and earlier; NKI 0.3 moved it to NEURON_PLATFORM_TARGET_OVERRIDE) makes the
    kernel run on that target unless a launch names one; it warns once as an older release's call.
    """
    if platform_target is not None:
        get_target_spec(platform_target)  # an unknown target fails here, with the spec error
        older_call("nki.jit", "platform_target")
    if fn is None:
        return lambda f: Kernel(f, platform_target=platform_target)
    if isinstance(fn, Kernel):
        return fn if platform_target is None else Kernel(fn.fn, fn.grid, platform_target)
    return Kernel(fn, platform_target=platform_target)


def _as_kernel(kernel: Any) -> Kernel:
    if isinstance(kernel, Kernel):
        return kernel
    if callable(kernel):
        return Kernel(kernel)
    raise UsageError(f"expected a kernel function, got {type(kernel).__name__}", user_location())


def _to_numpy(x: Any) -> tuple[np.ndarray, bool]:
    """A numpy copy of an array argument, and whether it came from torch."""
    if type(x).__module__.startswith("torch"):
        return torch_to_numpy(x), True
    return np.asarray(x), False


def _input_tensor(machine: Machine, arg: Any, index: int | str, read_only: bool = False) -> tuple[Any, bool]:
    if isinstance(arg, list | tuple):
        # Arrays nested in a list/tuple argument (e.g. the operands of a fused op chain) go to HBM too.
        items = [_input_tensor(machine, a, f"{index}.{j}", read_only) for j, a in enumerate(arg)]
        return type(arg)(v for v, _ in items), any(t for _, t in items)
    if isinstance(arg, TensorSpec):
        if machine.functional:
            raise UsageError(
                f"argument {index} is a TensorSpec (shape only): run with mode='timing', or pass an array",
                user_location(),
            )
        alloc = machine.allocate(MemoryKind.HBM, arg.shape, kernel_dtype(arg.dtype, index), f"arg{index}")
        alloc.mark_all_written()
        return NkiTensor(alloc), False
    # numpy, torch, and jax arrays (the NKI tutorials' JAX drivers pass jax.Array) go to HBM
    array_module = type(arg).__module__.split(".")[0]
    if isinstance(arg, np.ndarray) or (array_module in ("torch", "jax", "jaxlib") and hasattr(arg, "shape")):
        data, from_torch = _to_numpy(arg)
        data = exact_kernel_array(data, index)
        alloc = machine.allocate(MemoryKind.HBM, tuple(data.shape), data.dtype, f"arg{index}")
        if alloc.storage is not None:
            if read_only and data.flags.c_contiguous:
                # The argument's own memory, write-protected: reshapes and dtype views of it stay views (it is
                # C-contiguous), and a write raises (InputWrittenError), so the caller's array is never changed.
                view = data.view()
                view.flags.writeable = False
                alloc.storage = view
            else:
                alloc.storage[...] = data
        alloc.mark_all_written()
        return NkiTensor(alloc), from_torch
    return arg, False


def _output(value: Any, functional: bool, as_torch: bool) -> Any:
    if isinstance(value, NkiTensor):
        if not functional:
            return TensorSpec(tuple(value.shape), value.dtype)
        arr = np.array(value.read())
        return numpy_to_torch(arr) if as_torch else arr
    if isinstance(value, tuple | list):
        return type(value)(_output(v, functional, as_torch) for v in value)
    return value


def _warn_unwritten_outputs(machine: Machine, kernel: str, value: Any, what: str) -> None:
    """Add a profile warning for each returned tensor with elements the kernel never wrote (they hold poison)."""
    if isinstance(value, tuple | list):
        for i, v in enumerate(value):
            _warn_unwritten_outputs(machine, kernel, v, f"{what} {i}")
        return
    if not isinstance(value, NkiTensor) or value.alloc.root.fully_written or value.alloc.storage is None:
        return
    written = value.alloc.written_mask()
    done = 0 if written is None else int(np.count_nonzero(written[value.np_index(clip=True)]))
    if done < value.size:
        poison = "NaN" if dtypes.is_float(value.dtype) else "4"
        machine.warn(
            f"kernel {kernel}: {value.size - done} of {value.size} elements of its {what} "
            f"({value.alloc.describe()}) were never written; they read as {poison}"
        )


def _report(warned: list[str]) -> None:
    """Raise the profile's warnings as Python warnings, for callers that get outputs and no Profile."""
    for message in warned:
        warnings.warn(message, warning_category(message), stacklevel=3)


@dataclass
class Traced:
    """A kernel traced onto a fresh chip: its instruction stream (not yet scheduled) and its result."""

    kernel: Kernel
    spec: HardwareSpec
    mode: Mode
    machine: Machine
    n_cores: int
    result: Any
    as_torch: bool

    def outputs(self) -> Any:
        if self.machine.functional:
            _warn_unwritten_outputs(self.machine, self.kernel.name, self.result, "output")
        return _output(self.result, self.machine.functional, self.as_torch)

    def profile(self) -> Profile:
        timeline = schedule(
            self.machine.instructions, self.spec, self.n_cores, self.machine.reuse, self.machine.allocations
        )
        return Profile(
            kernel_name=self.kernel.name,
            target=self.spec.name,
            mode=self.mode,
            spec=self.spec,
            instructions=self.machine.instructions,
            timeline=timeline,
            warnings=self.machine.warnings,
            sbuf_peak_bytes=self.machine.peak_bytes(MemoryKind.SBUF),
            psum_peak_bytes=self.machine.peak_bytes(MemoryKind.PSUM),
            grid=self.kernel.grid,
            outputs=self.outputs(),
        )


def trace(
    kernel: Kernel,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    target: Any = None,
    mode: Mode = "functional",
    cores: int | None = None,
    read_only_inputs: bool = False,
) -> Traced:
    """Run every SPMD program of `kernel` on a fresh simulated chip (values in functional mode), unscheduled.

    read_only_inputs: HBM inputs use the argument arrays' memory (C-contiguous ones), write-protected, instead of
    a copy; a kernel that writes one raises InputWrittenError (trace it again without). For callers that run
    library kernels on large arguments every call (compiler/kernel_runner.py).
    """
    spec: HardwareSpec = get_target_spec(target or kernel.platform_target)
    if mode not in ("functional", "timing"):
        raise UsageError(f"mode must be 'functional' or 'timing', got {mode!r}", user_location())
    if not callable(kernel.fn):
        raise UsageError(f"expected a kernel function, got a {type(kernel.fn).__name__}", user_location())
    _bind(kernel, args, kwargs)
    n_programs = int(np.prod(kernel.grid))
    nc_axes = [i for i, g in enumerate(kernel.grid) if isinstance(g, NcDim)]
    # an nl.spmd_dim(n, nl.nc(c)) dim holds n * c programs over c cores (its `cores`); nl.nc(c) alone: c and c
    n_nc = int(np.prod([getattr(kernel.grid[i], "cores", kernel.grid[i]) for i in nc_axes])) if nc_axes else 0
    n_cores = cores or n_nc or min(spec.chip.default_lnc, n_programs)
    if max(n_cores, n_nc) > spec.chip.physical_cores:
        raise UsageError(
            f"{spec.name} has {spec.chip.physical_cores} physical cores, asked for {max(n_cores, n_nc)}"
            + (" by nl.nc() grid dims" if n_nc > n_cores else ""),
            user_location(),
        )
    machine = Machine(spec, mode, n_cores)
    converted = [_input_tensor(machine, a, i, read_only_inputs) for i, a in enumerate(args)]
    converted_kw = {k: _input_tensor(machine, v, k, read_only_inputs) for k, v in kwargs.items()}
    hbm_args = [c[0] for c in converted]
    hbm_kwargs = {k: c[0] for k, c in converted_kw.items()}
    as_torch = any(c[1] for c in (*converted, *converted_kw.values()))
    shared: list[Any] = []
    result: Any = None
    for k, pid in enumerate(itertools.product(*(range(g) for g in kernel.grid))):
        core = k
        if nc_axes:  # nl.nc dims: the program's index along them picks its core
            core = int(np.ravel_multi_index([pid[i] for i in nc_axes], [kernel.grid[i] for i in nc_axes]))
        ctx = TraceContext(
            machine, core=core % n_cores, program_id=pid, grid=kernel.grid, kernel_name=kernel.name, shared_hbm=shared
        )
        with activate(ctx), internal_errors_reported(read_only_inputs):
            ret = kernel.fn(*hbm_args, **hbm_kwargs)
        if k == 0:
            result = ret
    return Traced(kernel, spec, mode, machine, n_cores, result, as_torch)


def launch(
    kernel: Kernel,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    target: Any = None,
    mode: Mode = "functional",
    cores: int | None = None,
) -> Profile:
    """Run every SPMD program of `kernel` on a fresh simulated chip and time the result."""
    return trace(kernel, args, kwargs, target, mode, cores).profile()


def _bind(kernel: Kernel, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Check the call against the kernel's signature before tracing (a wrong call is the caller's error)."""
    try:
        sig = inspect.signature(kernel.fn)
    except (TypeError, ValueError):
        return  # no introspectable signature: the call itself will tell
    try:
        sig.bind(*args, **kwargs)
    except TypeError as err:
        raise UsageError(
            f"kernel {kernel.name}{sig} cannot be called with {len(args)} positional argument(s)"
            + (f" and keyword(s) {', '.join(kwargs)}" if kwargs else "")
            + f": {err}",
            user_location(),
            rule="signature",
        ) from None


def simulate(kernel: Any, target: Any = None) -> Callable[..., Any]:
    """`nki.simulate(kernel)(*arrays)`: run functionally and return the kernel's outputs."""
    k = _as_kernel(kernel)

    def run(*args: Any, **kwargs: Any) -> Any:
        prof = launch(k, args, kwargs, target=target)
        _report(prof.warnings)
        return prof.outputs

    return run


def simulate_kernel(kernel: Any, *args: Any, **kwargs: Any) -> Any:
    """Legacy `nki.simulate_kernel(kernel, *args)`."""
    return simulate(kernel)(*args, **kwargs)


def profile(
    kernel: Any = None,
    target: Any = None,
    mode: Mode = "functional",
    cores: int | None = None,
    working_directory: str | None = None,
    **_: Any,
) -> Any:
    """`trnsim.nki.profile(kernel, target="trn2")(*args)` -> Profile (outputs on `.outputs`).

    With legacy arguments (`working_directory=`), behaves like legacy `nki.profile`: a decorator whose
    kernel, when called, writes a Perfetto trace and a JSON profile into that directory.
    """
    if kernel is None:
        return lambda k: profile(k, target, mode, cores, working_directory)
    k = _as_kernel(kernel)

    def run(*args: Any, **kwargs: Any) -> Profile:
        prof = launch(k, args, kwargs, target=target, mode=mode, cores=cores)
        if working_directory:
            import json

            out = Path(working_directory)
            prof.to_perfetto(out / "profile.json")
            (out / "profile_summary.json").write_text(json.dumps(prof.to_dict(), indent=2))
        return prof

    return run


class LatencyStats:
    """Legacy `benchmark_result.nc_latency`: the simulation is deterministic, so every percentile is the same."""

    def __init__(self, latency_us: float) -> None:
        self.latency_us = latency_us

    def get_latency_percentile(self, percentile: int) -> float:
        if not 0 <= percentile <= 100:
            raise UsageError(f"percentile must be in 0..100, got {percentile}", user_location())
        return self.latency_us


@dataclass
class BenchmarkResult:
    nc_latency: LatencyStats
    profile: Profile


def benchmark(kernel: Any = None, warmup: int = 10, iters: int = 100, target: Any = None, **_: Any) -> Any:
    """Legacy `nki.benchmark`: the returned kernel, once called, has `.benchmark_result` (simulated latency)."""
    if kernel is None:
        return lambda k: benchmark(k, warmup, iters, target)
    k = _as_kernel(kernel)
    bench = Kernel(k.fn, k.grid)

    class _Benchmarked(Kernel):
        def __getitem__(self, grid: Any) -> Kernel:
            return benchmark(Kernel.__getitem__(self, grid), warmup, iters, target)

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            prof = launch(self, args, kwargs, target=target)
            self.benchmark_result = BenchmarkResult(LatencyStats(prof.latency_us), prof)
            _report(prof.warnings)
            return prof.outputs

    out = _Benchmarked(bench.fn, bench.grid)
    return out


def baremetal(kernel: Any = None, **kw: Any) -> Any:
    """Legacy `nki.baremetal` runs on a NeuronDevice; here it runs on the simulated chip."""
    if kernel is None:
        return lambda k: baremetal(k, **kw)
    k = _as_kernel(kernel)

    class _Baremetal(Kernel):
        def __getitem__(self, grid: Any) -> Kernel:
            return baremetal(Kernel.__getitem__(self, grid))

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            prof = launch(self, args, kwargs)
            _report(prof.warnings)
            return prof.outputs

    return _Baremetal(k.fn, k.grid)
