"""What one replica of tensor-parallel degree `tp` gets from a (possibly modified) hardware spec: chips,
peak FLOP/s, HBM bandwidth and capacity, and its share of an instance's price and power.

tp counts logical NeuronCores (physical_cores / default_lnc per chip), as `trnsim serve` and `trnsim plan` do.
A replica smaller than a chip gets that fraction of the chip's HBM and bandwidth; a larger one spans chips
(and whole instances past one instance's ranks).
"""

from __future__ import annotations

from dataclasses import dataclass

from trnsim.errors import TrnsimError
from trnsim.hw.spec import HardwareSpec
from trnsim.sweep.errors import SweepError

COOLING = "air"  # as trnsim.serve.setup.DEFAULT_COOLING


@dataclass(frozen=True)
class ReplicaShape:
    tp: int
    chips: float  # may be a fraction of a chip
    peak_flops: float  # dense bf16, from the TensorE array size and clock (not the published chip peak)
    hbm_bytes_per_s: float
    hbm_bytes: float
    usd_per_hour: float | None  # this replica's share of the instance price, None without a price entry
    power_w: float | None  # its share of the server's facility power at full load, None without a power entry


def ranks_per_chip(spec: HardwareSpec) -> int:
    return spec.chip.physical_cores // spec.chip.default_lnc


def check_tp(spec: HardwareSpec, tp: int, instance: str) -> None:
    """tp must fill whole instances or divide one instance's ranks (as cost.replica_layout requires)."""
    ranks = spec.instance(instance).chips * ranks_per_chip(spec)
    if tp <= ranks and ranks % tp:
        raise SweepError(f"tp={tp} does not divide the {ranks} tp ranks of one {instance}; use a divisor of {ranks}")
    if tp > ranks and tp % ranks:
        raise SweepError(f"tp={tp} spans a partial {instance} ({ranks} ranks each); use a multiple of {ranks}")


def default_instance(spec: HardwareSpec) -> str:
    """The first instance of the spec that has a price entry, else its first instance."""
    from trnsim.cost import load_prices

    if not spec.instances:
        raise SweepError(f"hardware spec {spec.name!r} lists no instances; add one or choose another preset")
    priced = load_prices().instances
    return next((i.name for i in spec.instances if i.name in priced), spec.instances[0].name)


def _instance_share(instance: str, chips: float) -> tuple[float | None, float | None]:
    """(USD/hour, watts at full load) for `chips` chips of `instance`, None where the tables lack an entry."""
    from trnsim.cost import load_power, load_prices, server_power

    try:
        entry = load_prices().instance(instance)
    except TrnsimError:
        return None, None
    share = chips / entry.accelerators
    try:
        # Facility power (IT power x the PUE of air cooling) at full load for the whole run: the convention of
        # trnsim.serve.setup (`trnsim serve`), so a sweep point and `trnsim serve` report the same J/token.
        power = load_power()
        watts: float | None = server_power(instance).peak_w * power.cooling_for(COOLING).pue.value * share
    except TrnsimError:
        watts = None
    return entry.usd_per_hour * share, watts


def replica_shape(spec: HardwareSpec, tp: int, instance: str) -> ReplicaShape:
    check_tp(spec, tp, instance)
    chips = tp / ranks_per_chip(spec)
    tensor = spec.core.tensor
    per_core = tensor.pe_rows * tensor.pe_cols * 2 * tensor.clock_ghz * 1e9  # one MAC = 2 FLOPs per PE per cycle
    usd, watts = _instance_share(instance, chips)
    return ReplicaShape(
        tp=tp,
        chips=chips,
        peak_flops=per_core * spec.chip.physical_cores * chips,
        hbm_bytes_per_s=spec.chip.hbm_bytes_per_ns * 1e9 * chips,
        hbm_bytes=spec.chip.hbm_bytes * chips,
        usd_per_hour=usd,
        power_w=watts,
    )
