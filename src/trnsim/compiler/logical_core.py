"""A tensor-parallel rank is one *logical* NeuronCore: `default_lnc` physical cores that share its work.

The library kernels run on one physical core. A rank of an estimate (what serving, sizing and the CLI price)
is a logical core, as the Neuron SDK's tp degree counts them: on trn2 (LNC=2) two physical cores, each with
its own engines and DMA queues, split every kernel's work between them (SPMD over the two). The estimate
therefore takes a kernel's time on one physical core and divides it by the cores of the logical core, which
assumes an even split: right for the large kernels that dominate (each core streams half the weights or
computes half the tiles), optimistic for tiny kernels whose fixed latencies do not halve. Collectives,
host fallback and free ops are left as they are. torch.compile of a model (functional runs) still reports one
physical core.
"""

from __future__ import annotations

from trnsim.hw.spec import HardwareSpec
from trnsim.runtime.graph_profile import GraphProfile

SPLIT_KINDS = ("kernel", "move")  # work the physical cores of a logical core share


def spread_over_logical_core(profile: GraphProfile, spec: HardwareSpec) -> None:
    """Scale kernel and data-movement times of one-physical-core runs to one logical core of `spec`."""
    cores = spec.chip.default_lnc
    if cores <= 1 or profile.cores_per_rank != 1:
        return
    for record in profile.records:
        if record.kind in SPLIT_KINDS:
            record.device_us /= cores
    profile.cores_per_rank = cores
