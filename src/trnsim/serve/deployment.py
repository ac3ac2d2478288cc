"""`trnsim serve --deployment FILE`: several tenants served on one instance, each on its own NeuronCores
(here) or its own GPUs / MIG slices (serve/deployment_gpu.py, when the instance holds GPUs).

    instance = "trn2.48xlarge"
    lnc = 1
    [[tenant]]
    name = "chat"
    model = "llama-3.1-8b"
    cores = "0-3"          # NeuronCores at this LNC: "N" or "A-B"; tp = the number of cores
    rate = 4               # or concurrency = N
    requests = 200
    prompt = 1024
    output = 128

A tenant owns whole NeuronCores (sim/tenancy.py rules: contiguous, not overlapping, inside the instance,
LNC matching). Its replica has its cores' share of the instance's HBM, price and power, and its step cost
is the compiler's estimate on the chip at the deployment's LNC. Neighbours interfere through the HBM stacks
they share (sim/hbm_stacks.toml): a core streams at most its DMA queues' rate, a stack serves at most its
share of the chip's bandwidth, so a tenant whose cores share a stack with another tenant's busy cores gets
  rate = min(D, S / (k + sum over neighbours of u_n k_n)) instead of min(D, S / k)
per core (D: a core's DMA queues together, S: the stack's bandwidth, k: the tenant's cores on the stack,
u_n: the neighbour's device-busy share from a first run alone). The slowest stack bounds a tensor-parallel
step. Tenants whose collectives cross the same chip's links share that bandwidth (serve/deployment_links.py).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trnsim.cost import load_prices
from trnsim.errors import TrnsimError
from trnsim.hw.presets import list_presets, load_preset
from trnsim.hw.spec import HardwareSpec
from trnsim.serve.deployment_gpu import GpuDeployment, parse_gpu_deployment, run_gpu_deployment
from trnsim.serve.deployment_links import chips_of, link_factor, link_neighbours, with_link_bandwidth
from trnsim.serve.deployment_tenant import TenantLoad, serve_tenant
from trnsim.serve.errors import ServeError
from trnsim.serve.model import GIB
from trnsim.serve.setup import accelerator_target
from trnsim.sim.instance import check_lnc, hbm_stacks
from trnsim.sim.tenancy import CoreRange, check_partition, parse_cores

_TENANT_KEYS = {"name", "model", "cores", "rate", "concurrency", "requests", "prompt", "output", "lnc"}


@dataclass(frozen=True)
class TenantConfig:
    name: str
    model: str
    cores: CoreRange
    rate: float | None
    concurrency: int | None
    requests: int
    prompt: str
    output: str


@dataclass(frozen=True)
class Deployment:
    instance: str
    lnc: int
    spec: HardwareSpec  # the chip at the deployment's LNC
    tenants: tuple[TenantConfig, ...]


def load_deployment(path: str | Path) -> Deployment | GpuDeployment:
    """Read and check a deployment file; every mistake is one ServeError line naming the file and the key."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except OSError as exc:
        raise ServeError(f"cannot read deployment file {p}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ServeError(f"deployment file {p} is not valid TOML: {exc}") from None
    return parse_deployment(data, str(p))


def parse_deployment(data: dict[str, Any], where: str = "deployment") -> Deployment | GpuDeployment:
    unknown = set(data) - {"instance", "lnc", "tenant"}
    if unknown:
        raise ServeError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: instance, lnc, [[tenant]]")
    instance = data.get("instance")
    if not isinstance(instance, str):
        raise ServeError(f'{where}: instance = "..." is required (e.g. "trn2.48xlarge")')
    target = accelerator_target(instance)
    if target not in list_presets():  # a GPU instance: whole GPUs or MIG slices (serve/deployment_gpu.py)
        return parse_gpu_deployment(data, where, instance, target)
    base = load_preset(target)
    lnc = data.get("lnc", base.chip.default_lnc)
    tenants_raw = data.get("tenant")
    if not isinstance(tenants_raw, list) or not tenants_raw:
        raise ServeError(f"{where}: at least one [[tenant]] table is required")
    try:
        check_lnc(base, lnc)
        spec = base.model_copy(update={"chip": base.chip.model_copy(update={"default_lnc": lnc})})
        tenants = tuple(_tenant(t, i, where, lnc) for i, t in enumerate(tenants_raw))
        names = [t.name for t in tenants]
        if len(set(names)) != len(names):
            raise ServeError(f"{where}: tenant names must differ, got {names}")
        check_partition(base, base.instance(instance).chips, lnc, {t.name: t.cores for t in tenants})
    except TrnsimError as exc:
        if isinstance(exc, ServeError):
            raise
        raise ServeError(f"{where}: {getattr(exc, 'bare_message', exc)}") from None
    return Deployment(instance, lnc, spec, tenants)


def _tenant(raw: Any, i: int, where: str, lnc: int) -> TenantConfig:
    if not isinstance(raw, dict):
        raise ServeError(f"{where}: [[tenant]] {i + 1} must be a table")
    unknown = set(raw) - _TENANT_KEYS
    name = str(raw.get("name", f"#{i + 1}"))
    if unknown:
        raise ServeError(
            f"{where}: tenant {name!r} has unknown key(s) {sorted(unknown)}; allowed: {sorted(_TENANT_KEYS)}"
        )
    for key in ("name", "model", "cores"):
        if key not in raw:
            raise ServeError(f"{where}: tenant {name!r} needs {key} = ...")
    if ("rate" in raw) == ("concurrency" in raw):
        raise ServeError(f"{where}: tenant {name!r} needs exactly one of rate (requests/s) or concurrency (clients)")
    if "lnc" in raw and raw["lnc"] != lnc:
        raise ServeError(
            f"{where}: tenant {name!r} was compiled for LNC={raw['lnc']} but the instance runs at LNC={lnc}; "
            "compiler and runtime LNC must match"
        )
    requests = raw.get("requests", 200)
    if not isinstance(requests, int) or requests < 1:
        raise ServeError(f"{where}: tenant {name!r}: requests must be a positive integer, got {requests!r}")
    return TenantConfig(
        name=name,
        model=str(raw["model"]),
        cores=parse_cores(raw["cores"]),
        rate=float(raw["rate"]) if "rate" in raw else None,
        concurrency=int(raw["concurrency"]) if "concurrency" in raw else None,
        requests=requests,
        prompt=str(raw.get("prompt", 2048)),
        output=str(raw.get("output", 256)),
    )


def physical_cores(dep: Deployment, t: TenantConfig) -> list[tuple[int, int]]:
    """(chip, physical core) of every core of the tenant."""
    per_chip = dep.spec.chip.physical_cores
    return [divmod(c * dep.lnc + k, per_chip) for c in range(t.cores.first, t.cores.last + 1) for k in range(dep.lnc)]


def stacks_of(dep: Deployment, t: TenantConfig) -> dict[tuple[int, int], int]:
    """(chip, stack) -> how many of the tenant's physical cores sit on it."""
    per_stack = dep.spec.chip.physical_cores // hbm_stacks(dep.spec)
    out: dict[tuple[int, int], int] = {}
    for chip, core in physical_cores(dep, t):
        key = (chip, core // per_stack)
        out[key] = out.get(key, 0) + 1
    return out


def bandwidth_factor(dep: Deployment, t: TenantConfig, busy: dict[str, float]) -> tuple[float, list[str]]:
    """The tenant's DMA rate under its neighbours' load over its rate alone (the worst of its stacks), and
    the neighbours that share a stack with it."""
    spec = dep.spec
    d = spec.core.dma.queues * spec.core.dma.queue_bytes_per_ns  # one physical core's DMA queues together
    s = spec.chip.hbm_bytes_per_ns / hbm_stacks(spec)
    mine = stacks_of(dep, t)
    others = {o.name: stacks_of(dep, o) for o in dep.tenants if o.name != t.name}
    factor, neighbours = 1.0, set()
    for stack, k in mine.items():
        load = float(k)
        for name, theirs in others.items():
            if stack in theirs:
                neighbours.add(name)
                load += busy.get(name, 1.0) * theirs[stack]
        factor = min(factor, min(d, s / load) / min(d, s / k))
    return factor, sorted(neighbours)


def _tenant_spec(dep: Deployment, hbm: float, links: float) -> HardwareSpec:
    """The chip as one tenant sees it: its DMA rate scaled by `hbm`, its instance's links by `links`."""
    spec = dep.spec
    if hbm < 1.0:
        dma = spec.core.dma.model_copy(update={"queue_bytes_per_ns": spec.core.dma.queue_bytes_per_ns * hbm})
        spec = spec.model_copy(update={"core": spec.core.model_copy(update={"dma": dma})})
    if links != 1.0:
        spec = with_link_bandwidth(spec, dep.instance, links)
    return spec


def _serve(
    dep: Deployment,
    t: TenantConfig,
    scheduler: str,
    seed: int,
    progress: bool,
    hbm: float = 1.0,
    links: float = 1.0,
    meter: bool = False,
) -> tuple[Any, float]:
    """The tenant's serve result, and (with `meter`) the share of its busy time its links are on the wire."""
    tp = t.cores.count
    entry = load_prices().instance(dep.instance)
    share = tp * dep.lnc / (entry.accelerators * dep.spec.chip.physical_cores)  # its cores' share of the instance
    memory = share * entry.accelerators * entry.hbm_gib_per_accelerator * GIB
    free = _tenant_spec(dep, hbm, math.inf) if meter else None
    load = TenantLoad(t.name, t.model, t.rate, t.concurrency, t.requests, t.prompt, t.output)
    spec = _tenant_spec(dep, hbm, links)
    where = f"cores {t.cores}"
    return serve_tenant(load, dep.instance, spec, tp, share, memory, where, scheduler, seed, progress, free)


def run_deployment(
    dep: Deployment | GpuDeployment, scheduler: str = "continuous", seed: int = 0, progress: bool = False
) -> dict[str, dict[str, Any]]:
    """Each tenant's serve metrics; tenants sharing HBM stacks or collective links rerun with their neighbours'
    load (each neighbour's load measured in its run alone)."""
    if isinstance(dep, GpuDeployment):
        return run_gpu_deployment(dep, scheduler, seed, progress)
    alone, wire_busy = {}, {}
    for t in dep.tenants:
        alone[t.name], wire = _serve(dep, t, scheduler, seed, progress, meter=bool(link_neighbours(dep, t)))
        wire_busy[t.name] = float(alone[t.name].to_dict()["utilization"]) * wire
    busy = {name: float(r.to_dict()["utilization"]) for name, r in alone.items()}
    out: dict[str, dict[str, Any]] = {}
    for t in dep.tenants:
        factor, neighbours = bandwidth_factor(dep, t, busy)
        links, link_peers = link_factor(dep, t, wire_busy)
        shared = factor < 1.0 or links < 1.0
        result = _serve(dep, t, scheduler, seed, progress, factor, links)[0] if shared else alone[t.name]
        out[t.name] = result.to_dict() | {
            "hw": dep.instance,
            "lnc": dep.lnc,
            "cores": str(t.cores),
            "chips": sorted(chips_of(dep, t)),
            "tp": t.cores.count,
            "rate_req_s": t.rate,
            "concurrency": t.concurrency,
            "hbm_stack_neighbours": neighbours,
            "hbm_bandwidth_factor": factor,
            "link_neighbours": link_peers,
            "link_bandwidth_factor": links,
            "link_busy_alone": wire_busy[t.name],
            "tpot_ms_alone": alone[t.name].to_dict()["tpot_ms"],
            "ttft_ms_alone": alone[t.name].to_dict()["ttft_ms"],
            "utilization_alone": busy[t.name],
        }
    return out
