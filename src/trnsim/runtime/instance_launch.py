"""Launch a kernel on N ranks of an instance, or several tenants' kernels on one instance, in one simulation.

`run_ranks(kernel, [args of rank 0, args of rank 1, ...], target="trn2")` traces every rank's SPMD programs
(one cooperative thread each, sim/cooperative.py, so collectives can exchange real values), times every
rank on one clock (sim/instance_timing.py) and returns an InstanceProfile: outputs per rank, a Profile per
rank, collective time, one Perfetto trace. `run_tenants` does the same for several tenants, each on its own
contiguous range of NeuronCores, with isolation enforced by the machines (sim/tenancy.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from trnsim.errors import UsageError
from trnsim.hw.spec import HardwareSpec
from trnsim.runtime.instance_profile import InstanceProfile
from trnsim.runtime.profile import Profile
from trnsim.sim.instance import InstanceLayout, check_lnc, layout
from trnsim.sim.instance_timing import time_instance
from trnsim.sim.machine import Machine, Mode
from trnsim.sim.memory import MemoryKind, MemorySpace
from trnsim.sim.rank_session import Launch, RankSession, Worker
from trnsim.sim.tenancy import CoreRange, TenantMachine, check_lnc_match, check_partition, parse_cores

if TYPE_CHECKING:
    from trnsim.nki.context import TraceContext
    from trnsim.nki.kernel import Kernel

# trnsim.nki's package __init__ re-exports this module's launchers, so the nki imports below sit at their use sites:
# importing them at module level made `import trnsim.runtime.instance_launch` (before trnsim.nki) a circular import.


@dataclass
class TenantLaunch:
    """One tenant's kernel: its NeuronCores ('N' or 'A-B' at the instance's LNC) and each rank's arguments."""

    name: str
    kernel: Any
    cores: str | int
    rank_args: Sequence[Sequence[Any]]
    kwargs: dict[str, Any] = field(default_factory=dict)
    lnc: int | None = None  # the LNC the kernel was built for; must match the instance's


def run_ranks(
    kernel: Any,
    rank_args: Sequence[Sequence[Any]],
    *,
    target: Any = None,
    lnc: int | None = None,
    instance: str | None = None,
    mode: Mode = "functional",
    kwargs: dict[str, Any] | None = None,
) -> InstanceProfile:
    """Run `kernel` on len(rank_args) ranks (NeuronCores at `lnc`, default the chip's), rank r with rank_args[r]."""
    if not rank_args:
        raise UsageError("run_ranks needs the arguments of at least one rank (a list with one tuple per rank)")
    from trnsim.nki.target import get_target_spec

    tenant = TenantLaunch("", kernel, f"0-{len(rank_args) - 1}", rank_args, kwargs or {})
    return _run(get_target_spec(target), [tenant], lnc, instance, mode)[""]


def run_tenants(
    tenants: Sequence[TenantLaunch],
    *,
    target: Any = None,
    lnc: int | None = None,
    instance: str | None = None,
    mode: Mode = "functional",
) -> dict[str, InstanceProfile]:
    """Run every tenant's kernel on its own NeuronCores of one instance, together; a profile per tenant."""
    names = [t.name for t in tenants]
    if not tenants or any(not n for n in names) or len(set(names)) != len(names):
        raise UsageError(f"tenants need distinct non-empty names, got {names}")
    from trnsim.nki.target import get_target_spec

    return _run(get_target_spec(target), list(tenants), lnc, instance, mode)


def _run(
    spec: HardwareSpec, tenants: list[TenantLaunch], lnc: int | None, instance: str | None, mode: Mode
) -> dict[str, InstanceProfile]:
    from trnsim.nki.context import TraceContext
    from trnsim.nki.kernel import _as_kernel, _bind, _input_tensor, _output
    from trnsim.nki.kernel import _warn_unwritten_outputs as warn_unwritten

    if mode not in ("functional", "timing"):
        raise UsageError(f"mode must be 'functional' or 'timing', got {mode!r}")
    lnc = spec.chip.default_lnc if lnc is None else lnc
    check_lnc(spec, lnc)
    ranges: dict[str, CoreRange] = {t.name: parse_cores(t.cores) for t in tenants}
    for t in tenants:
        if t.lnc is not None:
            check_lnc_match(t.lnc, lnc, f"tenant {t.name!r}'s kernel")
        if len(t.rank_args) != ranges[t.name].count:
            raise UsageError(
                f"tenant {t.name or 'run'!r} has {ranges[t.name].count} NeuronCore(s) ({ranges[t.name]}) but "
                f"arguments for {len(t.rank_args)} rank(s); give one argument tuple per rank"
            )
    if instance is not None:  # a named instance: say which ranges do not fit before placing anything
        check_partition(spec, spec.instance(instance).chips, lnc, ranges)
    last = max(r.last for r in ranges.values())
    lay_all = layout(spec, last + 1, lnc, instance)  # the instance every tenant shares
    inst_name = lay_all.instance.name if lay_all.instance else None
    chips = lay_all.instance.chips if lay_all.instance else 1
    check_partition(spec, chips, lnc, ranges)
    hbm: dict[int, MemorySpace] = {}
    owners: dict[int, str] = {}
    launches: list[Launch] = []
    workers: list[Worker] = []
    tasks: list[Any] = []
    results: list[dict[int, Any]] = []
    kernels = [_as_kernel(t.kernel) for t in tenants]
    for li, (t, kernel) in enumerate(zip(tenants, kernels)):
        rng = ranges[t.name]
        lay = layout(spec, rng.count, lnc, inst_name, first_rank=rng.first, tenant=t.name)
        _bind(kernel, tuple(t.rank_args[0]), t.kwargs)
        n_cores, programs = _programs(kernel, lay)
        machines: list[Machine] = []
        for place in lay.ranks:
            space = hbm.setdefault(place.chip, MemorySpace(MemoryKind.HBM, spec.chip.hbm_bytes))
            machines.append(TenantMachine(spec, mode, n_cores, t.name, owners, space))
        launch = Launch(lay, t.name, machines, [{} for _ in lay.ranks])
        launches.append(launch)
        results.append({})
        for place, machine in zip(lay.ranks, machines):
            converted = [_input_tensor(machine, a, i) for i, a in enumerate(t.rank_args[place.rank])]
            converted_kw = {k: _input_tensor(machine, v, k) for k, v in t.kwargs.items()}
            args = [c[0] for c in converted]
            kw = {k: c[0] for k, c in converted_kw.items()}
            as_torch = any(c[1] for c in (*converted, *converted_kw.values()))
            shared: list[Any] = []
            for k, (pid, core) in enumerate(programs):
                workers.append(Worker(li, place.rank, k, core))
                ctx = TraceContext(machine, core=core, program_id=pid, grid=kernel.grid, kernel_name=kernel.name)
                ctx.shared_hbm = shared
                tasks.append(_task(kernel, ctx, args, kw, results[li], place.rank, k, as_torch))
    session = RankSession(launches, workers)
    session.run(tasks)
    timelines = time_instance(launches)
    out: dict[str, InstanceProfile] = {}
    for li, (t, kernel, launch) in enumerate(zip(tenants, kernels, launches)):
        profiles = []
        for place, machine in zip(launch.layout.ranks, launch.machines):
            value, as_torch = results[li].get(place.rank, (None, False))
            if machine.functional:
                warn_unwritten(machine, kernel.name, value, "output")
            profiles.append(
                Profile(
                    kernel_name=kernel.name,
                    target=spec.name,
                    mode=mode,
                    spec=spec,
                    instructions=machine.instructions,
                    timeline=timelines[(li, place.rank)],
                    warnings=machine.warnings,
                    sbuf_peak_bytes=machine.peak_bytes(MemoryKind.SBUF),
                    psum_peak_bytes=machine.peak_bytes(MemoryKind.PSUM),
                    grid=kernel.grid,
                    outputs=_output(value, machine.functional, as_torch),
                )
            )
        syncs = tuple(tuple(sorted(s)) for s in launch.syncs)
        out[t.name] = InstanceProfile(kernel.name, launch.layout, profiles, t.name, syncs)
    return out


def _programs(kernel: Kernel, lay: InstanceLayout) -> tuple[int, list[tuple[tuple[int, ...], int]]]:
    """The rank's cores in use and each SPMD program's (program id, core), as a one-chip launch spreads them."""
    from trnsim.nki.indexing import NcDim

    grid = kernel.grid
    n_programs = int(np.prod(grid))
    nc_axes = [i for i, g in enumerate(grid) if isinstance(g, NcDim)]
    n_nc = int(np.prod([getattr(grid[i], "cores", grid[i]) for i in nc_axes])) if nc_axes else 0
    if n_nc > lay.lnc:
        raise UsageError(
            f"the kernel's nl.nc() grid dims ask for {n_nc} cores but a rank at LNC={lay.lnc} has {lay.lnc}"
        )
    n_cores = n_nc or min(lay.lnc, n_programs)
    programs = []
    for k, pid in enumerate(itertools.product(*(range(g) for g in grid))):
        core = k
        if nc_axes:
            core = int(np.ravel_multi_index([pid[i] for i in nc_axes], [grid[i] for i in nc_axes]))
        programs.append((pid, core % n_cores))
    return n_cores, programs


def _task(
    kernel: Kernel,
    ctx: TraceContext,
    args: list[Any],
    kw: dict[str, Any],
    results: dict[int, Any],
    rank: int,
    program: int,
    as_torch: bool,
) -> Any:
    from trnsim.nki.context import activate
    from trnsim.nki.kernel_errors import internal_errors_reported

    def run() -> None:
        with activate(ctx), internal_errors_reported():
            ret = kernel.fn(*args, **kw)
        if program == 0:
            results[rank] = (ret, as_torch)

    return run
