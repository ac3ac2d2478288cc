"""MIG: an H100 / H200 split into up to seven isolated GPU instances, each a smaller GPU of its own.

What NVIDIA documents (mig_profiles.toml, with sources): a GPU has 7 compute slices and 8 memory slices; a
profile "Ng.Mgb" owns N compute slices (N/7 of the SMs) and some memory slices (their share of HBM capacity,
of the L2 and of the memory controllers, hence of HBM bandwidth); each profile may start only at documented
memory slices, and its compute and memory are its own (no sharing with the other instances). So a tenant on
a slice is modelled as the GPU preset with

    SMs, every tensor / SIMT peak       x compute / 7
    HBM capacity and bandwidth          x memory / 8

and no NVLink peers (a MIG instance runs alone: tp = 1). Neighbouring slices do not slow each other down.
The fitted efficiency curves stay the GPU's: how well one SM's kernels run does not change with the count.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from trnsim.gpu.errors import GpuError
from trnsim.gpu.spec import GpuSpec

_PROFILES_FILE = Path(__file__).with_name("mig_profiles.toml")


@dataclass(frozen=True)
class MigProfile:
    name: str
    compute: int  # compute slices (of `compute_slices`)
    memory: int  # memory slices (of `memory_slices`)
    instances: int  # how many one GPU holds
    placements: tuple[int, ...]  # memory slices it may start at
    compute_slices: int
    memory_slices: int

    @property
    def sm_fraction(self) -> float:
        return self.compute / self.compute_slices

    @property
    def memory_fraction(self) -> float:
        return self.memory / self.memory_slices


@cache
def _table() -> dict[str, dict[str, Any]]:
    return tomllib.loads(_PROFILES_FILE.read_text())


def mig_gpus() -> list[str]:
    """GPU presets with MIG profiles."""
    return sorted(_table())


def mig_profiles(gpu: str) -> dict[str, MigProfile]:
    """The MIG profiles of a GPU preset (h100, h200), by name."""
    entry = _table().get(gpu)
    if not isinstance(entry, dict):
        raise GpuError(f"no MIG profiles for GPU {gpu!r}; MIG is modelled on {', '.join(mig_gpus())}")
    c, m = int(entry["compute_slices"]), int(entry["memory_slices"])
    return {
        name: MigProfile(name, int(p["compute"]), int(p["memory"]), int(p["instances"]), tuple(p["placements"]), c, m)
        for name, p in entry["profiles"].items()
    }


def mig_profile(gpu: str, name: str) -> MigProfile:
    profiles = mig_profiles(gpu)
    if name not in profiles:
        raise GpuError(f"{gpu} has no MIG profile {name!r}; its profiles: {', '.join(profiles)}")
    return profiles[name]


def place_slices(gpu: str, names: list[str]) -> list[int]:
    """First memory slice of each profile in `names` on one GPU, or a GpuError when they cannot all fit
    (too many compute or memory slices, more instances than allowed, or no placement leaves them disjoint)."""
    profiles = [mig_profile(gpu, n) for n in names]
    limit = int(_table()[gpu]["max_instances"])
    if not profiles:
        return []
    first = profiles[0]
    why = ""
    if len(profiles) > limit:
        why = f"{len(profiles)} instances, at most {limit}"
    elif sum(p.compute for p in profiles) > first.compute_slices:
        why = f"{sum(p.compute for p in profiles)} compute slices, the GPU has {first.compute_slices}"
    elif sum(p.memory for p in profiles) > first.memory_slices:
        why = f"{sum(p.memory for p in profiles)} memory slices, the GPU has {first.memory_slices}"
    else:
        for p in profiles:
            if sum(q.name == p.name for q in profiles) > p.instances:
                why = f"{sum(q.name == p.name for q in profiles)} x {p.name}, at most {p.instances}"
                break
    starts = None if why else _assign(profiles, 0, frozenset())
    if starts is None:
        why = why or "no placement keeps their memory slices apart"
        raise GpuError(f"MIG slices {', '.join(names)} do not fit one {gpu}: {why}")
    return starts


def _assign(profiles: list[MigProfile], i: int, used: frozenset[int]) -> list[int] | None:
    """Depth-first search for disjoint placements (at most 7 profiles, each with at most 7 starts)."""
    if i == len(profiles):
        return []
    p = profiles[i]
    for start in p.placements:
        span = frozenset(range(start, start + p.memory))
        if not span & used:
            rest = _assign(profiles, i + 1, used | span)
            if rest is not None:
                return [start, *rest]
    return None


def slice_spec(spec: GpuSpec, profile: MigProfile) -> GpuSpec:
    """The GPU as a tenant on one MIG instance sees it (see the module docstring)."""
    c, m = profile.sm_fraction, profile.memory_fraction
    compute = spec.compute.model_copy(
        update={
            "sm_count": max(1, int(spec.compute.sm_count * c)),
            "dense_bf16_tflops": spec.compute.dense_bf16_tflops * c,
            "dense_fp16_tflops": spec.compute.dense_fp16_tflops * c,
            "dense_fp8_tflops": spec.compute.dense_fp8_tflops * c,
            "dense_tf32_tflops": spec.compute.dense_tf32_tflops * c,
            "dense_fp4_tflops": None if spec.compute.dense_fp4_tflops is None else spec.compute.dense_fp4_tflops * c,
            "fp32_tflops": spec.compute.fp32_tflops * c,
        }
    )
    memory = spec.memory.model_copy(
        update={"hbm_gib": spec.memory.hbm_gib * m, "hbm_tb_per_s": spec.memory.hbm_tb_per_s * m}
    )
    instance = spec.instance.model_copy(update={"name": f"{spec.instance.name} MIG {profile.name}", "gpus": 1})
    return spec.model_copy(
        update={
            "name": f"{spec.name}-mig-{profile.name}",
            "description": f"{spec.description}: one MIG {profile.name} instance",
            "compute": compute,
            "memory": memory,
            "instance": instance,
        }
    )
