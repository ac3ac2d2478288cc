"""`trnsim serve --deployment FILE` on a GPU instance: tenants on whole GPUs or on MIG slices of one GPU.

    instance = "p5.48xlarge"
    [[tenant]]
    name = "chat"
    model = "llama-3.1-8b"
    gpu = 0                # which GPU of the instance
    mig = "3g.40gb"        # a MIG profile of that GPU (gpu/mig_profiles.toml); tp = 1
    rate = 4
    [[tenant]]
    name = "batch"
    model = "llama-3.1-70b"
    gpus = "4-7"           # whole GPUs instead: tp = their count, collectives over NVLink
    concurrency = 16

A GPU either runs whole (one tenant's, possibly with others of that tenant) or in MIG mode (every tenant on
it has a slice, and the slices must fit: gpu/mig.py's placement rules). A MIG tenant's replica is the GPU
cut to its slice (its SMs, HBM bandwidth and memory), priced at its compute share of the GPU. MIG instances
are isolated in hardware (own SMs, L2 and memory controllers), so slices do not interfere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trnsim.cost import load_prices
from trnsim.errors import TrnsimError
from trnsim.gpu.mig import mig_gpus, mig_profile, place_slices, slice_spec
from trnsim.gpu.presets import load_gpu_preset
from trnsim.gpu.spec import GpuSpec
from trnsim.serve.deployment_tenant import TenantLoad, serve_tenant
from trnsim.serve.errors import ServeError
from trnsim.serve.model import GIB

_KEYS = {"name", "model", "gpu", "gpus", "mig", "rate", "concurrency", "requests", "prompt", "output"}


@dataclass(frozen=True)
class GpuTenant:
    load: TenantLoad
    first: int  # GPUs first..last
    last: int
    mig: str | None  # a MIG profile on GPU `first`, or whole GPUs

    @property
    def where(self) -> str:
        if self.mig is not None:
            return f"GPU {self.first} MIG {self.mig}"
        return f"GPU {self.first}" if self.first == self.last else f"GPUs {self.first}-{self.last}"

    @property
    def tp(self) -> int:
        return 1 if self.mig is not None else self.last - self.first + 1


@dataclass(frozen=True)
class GpuDeployment:
    instance: str
    gpu: GpuSpec  # the instance's GPU preset
    tenants: tuple[GpuTenant, ...]
    mig_starts: dict[str, int]  # tenant -> first memory slice of its MIG instance


def parse_gpu_deployment(data: dict[str, Any], where: str, instance: str, target: str) -> GpuDeployment:
    if "lnc" in data:
        raise ServeError(f"{where}: lnc is a Trainium setting; {instance} holds {target} GPUs (use gpu/gpus and mig)")
    gpu = load_gpu_preset(target)
    count = load_prices().instance(instance).accelerators
    raw = data.get("tenant")
    if not isinstance(raw, list) or not raw:
        raise ServeError(f"{where}: at least one [[tenant]] table is required")
    tenants = tuple(_tenant(t, i, where, count, target) for i, t in enumerate(raw))
    names = [t.load.name for t in tenants]
    if len(set(names)) != len(names):
        raise ServeError(f"{where}: tenant names must differ, got {names}")
    starts: dict[str, int] = {}
    for g in range(count):
        whole = [t for t in tenants if t.mig is None and t.first <= g <= t.last]
        sliced = [t for t in tenants if t.mig is not None and t.first == g]
        if len(whole) > 1 or (whole and sliced):
            users = [t.load.name for t in whole + sliced]
            raise ServeError(
                f"{where}: GPU {g} is given to {', '.join(users)}; a GPU belongs whole to one tenant, "
                "or is split into MIG slices (mig = ...) for several"
            )
        if sliced:
            try:
                placed = place_slices(target, [t.mig for t in sliced if t.mig is not None])
            except TrnsimError as exc:
                raise ServeError(f"{where}: GPU {g}: {getattr(exc, 'bare_message', exc)}") from None
            starts.update({t.load.name: s for t, s in zip(sliced, placed, strict=True)})
    return GpuDeployment(instance, gpu, tenants, starts)


def _tenant(raw: Any, i: int, where: str, count: int, target: str) -> GpuTenant:
    if not isinstance(raw, dict):
        raise ServeError(f"{where}: [[tenant]] {i + 1} must be a table")
    name = str(raw.get("name", f"#{i + 1}"))
    if "cores" in raw:
        raise ServeError(f"{where}: tenant {name!r}: cores is for Trainium NeuronCores; on GPUs use gpu/gpus and mig")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ServeError(f"{where}: tenant {name!r} has unknown key(s) {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    for key in ("name", "model"):
        if key not in raw:
            raise ServeError(f"{where}: tenant {name!r} needs {key} = ...")
    if ("rate" in raw) == ("concurrency" in raw):
        raise ServeError(f"{where}: tenant {name!r} needs exactly one of rate (requests/s) or concurrency (clients)")
    if ("gpu" in raw) == ("gpus" in raw):
        raise ServeError(f'{where}: tenant {name!r} needs exactly one of gpu = N (with mig) or gpus = "A-B"')
    first, last = _gpu_range(raw.get("gpu", raw.get("gpus")), where, name, count)
    mig = raw.get("mig")
    if mig is not None:
        if first != last:
            raise ServeError(f"{where}: tenant {name!r}: a MIG slice lives on one GPU; give gpu = N, not a range")
        if target not in mig_gpus():
            raise ServeError(f"{where}: tenant {name!r}: MIG is modelled on {', '.join(mig_gpus())}, not {target}")
        try:
            mig_profile(target, str(mig))
        except TrnsimError as exc:
            raise ServeError(f"{where}: tenant {name!r}: {getattr(exc, 'bare_message', exc)}") from None
    requests = raw.get("requests", 200)
    if not isinstance(requests, int) or requests < 1:
        raise ServeError(f"{where}: tenant {name!r}: requests must be a positive integer, got {requests!r}")
    load = TenantLoad(
        name=name,
        model=str(raw["model"]),
        rate=float(raw["rate"]) if "rate" in raw else None,
        concurrency=int(raw["concurrency"]) if "concurrency" in raw else None,
        requests=requests,
        prompt=str(raw.get("prompt", 2048)),
        output=str(raw.get("output", 256)),
    )
    return GpuTenant(load, first, last, None if mig is None else str(mig))


def _gpu_range(value: Any, where: str, name: str, count: int) -> tuple[int, int]:
    text = str(value).strip()
    try:
        a, b = (int(x) for x in text.split("-", 1)) if "-" in text else (int(text), int(text))
    except ValueError:
        raise ServeError(f"{where}: tenant {name!r}: GPUs must be 'N' or 'A-B', got {value!r}") from None
    if a < 0 or b < a or b >= count:
        raise ServeError(f"{where}: tenant {name!r}: GPUs {text} are not within the instance's 0-{count - 1}")
    return a, b


def run_gpu_deployment(
    dep: GpuDeployment, scheduler: str = "continuous", seed: int = 0, progress: bool = False
) -> dict[str, dict[str, Any]]:
    """Each tenant's serve metrics on its GPUs or MIG slice (slices are isolated: no interference to model)."""
    entry = load_prices().instance(dep.instance)
    out: dict[str, dict[str, Any]] = {}
    for t in dep.tenants:
        if t.mig is not None:
            profile = mig_profile(dep.gpu.name, t.mig)
            spec = slice_spec(dep.gpu, profile)
            share = profile.sm_fraction / entry.accelerators  # priced and powered at its compute share
            memory = spec.memory.hbm_gib * GIB
        else:
            spec = dep.gpu
            share = t.tp / entry.accelerators
            memory = t.tp * entry.hbm_gib_per_accelerator * GIB
        result, _ = serve_tenant(t.load, dep.instance, spec, t.tp, share, memory, t.where, scheduler, seed, progress)
        out[t.load.name] = result.to_dict() | {
            "hw": dep.instance,
            "gpus": t.where,
            "mig": t.mig,
            "mig_first_memory_slice": dep.mig_starts.get(t.load.name),
            "sm_count": spec.compute.sm_count,
            "hbm_tb_per_s": spec.memory.hbm_tb_per_s,
            "hbm_gib": spec.memory.hbm_gib,
            "instance_share": share,
            "tp": t.tp,
            "rate_req_s": t.load.rate,
            "concurrency": t.load.concurrency,
        }
    return out
