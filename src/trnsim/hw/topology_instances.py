"""Collective cost over a named instance: Trainium instances and UltraServers from the hardware presets,
GPU instances (NVLink switch: p5 H100/H200, p6-b200 = HGX B200 NVL8) from the GPU presets.

    instance_collective_us("trn2-ultraserver", "all_to_all", 8 * 2**20)          # all 64 chips
    instance_collective_us("p6-b200.48xlarge", "all_reduce", 2**26, devices=8)   # the B200 NVL8

A GPU instance's GPUs all hang off one NVLink switch (NVSwitch; NVLink 5 on B200), so its fabric is a switch
whose per-GPU bandwidth is the NCCL bus bandwidth the GPU preset gives (one direction of NVLink, times the
measured bus efficiency) and whose fixed cost is the preset's per-collective latency: for an all-reduce
that is exactly GpuModel.allreduce_time_s.
"""

from __future__ import annotations

from trnsim.errors import SpecError
from trnsim.gpu.presets import list_gpus, load_gpu_preset
from trnsim.gpu.spec import GpuSpec
from trnsim.hw.presets import list_presets, load_preset
from trnsim.hw.spec import Topology
from trnsim.hw.topology import CollectiveKind, Fabric, collective_ns, fabric_of


def gpu_fabric(spec: GpuSpec) -> Fabric:
    """A GPU instance's NVLink-switch fabric from its preset."""
    ic = spec.interconnect
    return Fabric(
        name=spec.instance.name,
        topology=Topology.all_to_all,
        devices=spec.instance.gpus,
        dims=(),
        link_bytes_per_ns=ic.nvlink_gb_per_s / 2 * ic.allreduce_bus_efficiency,  # GB/s = bytes/ns, one direction
        hop_latency_ns=0.0,  # the preset folds the switch latency into the fixed per-collective cost
        fixed_ns=ic.allreduce_latency_s * 1e9,
    )


def instance_fabric(instance: str) -> Fabric:
    """The fabric of a named instance of any Trainium-class or GPU preset."""
    for target in list_presets():
        for inst in load_preset(target).instances:
            if inst.name == instance:
                return fabric_of(inst)
    for gpu in list_gpus():
        spec = load_gpu_preset(gpu)
        if spec.instance.name == instance:
            return gpu_fabric(spec)
    raise SpecError(f"no preset describes instance {instance!r}; known: {', '.join(known_instances())}")


def known_instances() -> list[str]:
    names = [inst.name for t in list_presets() for inst in load_preset(t).instances]
    return names + [load_gpu_preset(g).instance.name for g in list_gpus()]


def instance_collective_us(
    instance: str, kind: CollectiveKind | str, nbytes: float, devices: int | None = None
) -> float:
    """Time (us) of one collective among `devices` chips/GPUs of `instance` (default all; the first ones, as
    ranks are numbered). nbytes: the per-device buffer (all-reduce, reduce-scatter, all-to-all) or the
    gathered total (all-gather)."""
    return collective_ns(instance_fabric(instance), kind, nbytes, devices) / 1000.0
