"""An instance as ranks: which chip, physical cores and HBM stack each rank (a NeuronCore at the LNC) uses.

Ranks are numbered the way the Neuron runtime numbers NeuronCores: logical core r at LNC=l is physical
cores r*l .. r*l+l-1, counted over the instance's chips in order. Physical cores attach to the chip's HBM
stacks in order (sim/hbm_stacks.toml); cores on one stack share its share of the chip's HBM bandwidth, so
that is the unit the timing model schedules together (a "domain": chip, stack).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from trnsim.errors import SpecError, UsageError
from trnsim.hw.spec import HardwareSpec, InstanceSpec

_STACKS_FILE = Path(__file__).with_name("hbm_stacks.toml")


@cache
def _stacks_table() -> dict[str, int]:
    data = tomllib.loads(_STACKS_FILE.read_text())
    return {name: int(entry["stacks"]) for name, entry in data.items()}


def hbm_stacks(spec: HardwareSpec) -> int:
    """HBM stacks per chip; a chip without an entry (a user's what-if spec) has one stack shared by all cores."""
    stacks = _stacks_table().get(spec.name, 1)
    if spec.chip.physical_cores % stacks:
        raise SpecError(f"{spec.name}: {spec.chip.physical_cores} physical cores do not split over {stacks} HBM stacks")
    return stacks


@dataclass(frozen=True)
class RankPlace:
    """Where one rank runs."""

    rank: int
    chip: int
    cores: tuple[int, ...]  # physical core indices on its chip (LNC of them)
    tenant: str = ""

    def domain(self, cores_per_stack: int) -> tuple[int, int]:
        """(chip, HBM stack) of the rank: the cores that share HBM bandwidth with it."""
        return (self.chip, self.cores[0] // cores_per_stack)


@dataclass(frozen=True)
class InstanceLayout:
    spec: HardwareSpec
    lnc: int
    instance: InstanceSpec | None  # None: all ranks on one chip
    ranks: tuple[RankPlace, ...]

    @property
    def cores_per_stack(self) -> int:
        return self.spec.chip.physical_cores // hbm_stacks(self.spec)

    @property
    def stack_bytes_per_ns(self) -> float:
        return self.spec.chip.hbm_bytes_per_ns / hbm_stacks(self.spec)

    @property
    def ranks_per_chip(self) -> int:
        return self.spec.chip.physical_cores // self.lnc

    def domain_of(self, rank: int) -> tuple[int, int]:
        return self.ranks[rank].domain(self.cores_per_stack)


def check_lnc(spec: HardwareSpec, lnc: int) -> None:
    if lnc not in (1, 2):
        raise UsageError(f"LNC must be 1 or 2, got {lnc}", rule="lnc")
    if lnc == 2 and spec.core.nc_version < 3:
        raise UsageError(
            f"{spec.name} (NeuronCore-v{spec.core.nc_version}) has no LNC=2; it needs trn2 or trn3", rule="lnc"
        )


def choose_instance(spec: HardwareSpec, chips: int, instance: str | None) -> InstanceSpec | None:
    """The named instance (it must hold `chips`), else the smallest preset instance that does (None: one chip)."""
    if instance is not None:
        inst = spec.instance(instance)
        if chips > inst.chips:
            raise UsageError(f"{chips} {spec.name} chips are needed but {inst.name} has {inst.chips}", rule="instance")
        return inst
    if chips <= 1:
        return None
    fitting = sorted((i for i in spec.instances if i.chips >= chips), key=lambda i: i.chips)
    if not fitting:
        biggest = max((i.chips for i in spec.instances), default=1)
        raise UsageError(f"{chips} {spec.name} chips are needed; the largest instance has {biggest}", rule="instance")
    return fitting[0]


def layout(
    spec: HardwareSpec,
    n_ranks: int,
    lnc: int | None = None,
    instance: str | None = None,
    first_rank: int = 0,
    tenant: str = "",
) -> InstanceLayout:
    """`n_ranks` consecutive NeuronCores (logical, at `lnc`) from `first_rank` on, over as few chips as needed.

    The ranks are numbered from 0 as the kernel sees them (like NEURON_RT_VISIBLE_CORES renumbers a process's
    cores); their chips and physical cores are those of NeuronCores first_rank.. of the instance."""
    lnc = spec.chip.default_lnc if lnc is None else lnc
    check_lnc(spec, lnc)
    if n_ranks < 1:
        raise UsageError(f"need at least one rank, got {n_ranks}", rule="ranks")
    per_chip = spec.chip.physical_cores // lnc
    chips = math.ceil((first_rank + n_ranks) / per_chip)
    inst = choose_instance(spec, chips, instance)
    places = []
    for r in range(first_rank, first_rank + n_ranks):
        chip, slot = divmod(r, per_chip)
        places.append(RankPlace(r - first_rank, chip, tuple(range(slot * lnc, slot * lnc + lnc)), tenant))
    return InstanceLayout(spec, lnc, inst, tuple(places))
