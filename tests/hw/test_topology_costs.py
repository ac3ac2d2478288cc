"""Collectives priced over each instance's topology, against the closed forms written out by hand from the
preset numbers, and against the two other places that price collectives (tensor-parallel estimates in
sim/collectives.py, GPU all-reduce in gpu/model.py), on random sizes."""

from __future__ import annotations

import numpy as np
import pytest

from trnsim.errors import SpecError
from trnsim.gpu.model import GpuModel
from trnsim.gpu.presets import load_gpu_preset
from trnsim.hw.presets import get_spec
from trnsim.hw.topology import collective_ns, fabric_of
from trnsim.hw.topology_instances import instance_collective_us
from trnsim.sim.collectives import Placement, all_gather_us, all_reduce_us

SIZES = np.random.default_rng().uniform(1e3, 1e9, size=4)


@pytest.mark.parametrize("draw", range(len(SIZES)))  # ids by index: xdist workers draw different sizes
def test_trn2_ultraserver_four_tori_in_a_ring(draw: int) -> None:
    nbytes = float(SIZES[draw])
    inst = get_spec("trn2").instance("trn2-ultraserver")  # 4x4 torus per node, 4 nodes in a ring
    bw, inter, h = inst.link_bytes_per_ns, inst.inter_node_link_bytes_per_ns, inst.hop_latency_ns
    assert (inst.chips, inst.topology_dims, inter < bw) == (64, [4, 4, 4], True)
    b = nbytes
    ar = (
        (2 * 3 / 4 * b / bw + 2 * 3 * h)
        + (2 * 3 / 4 * (b / 4) / bw + 2 * 3 * h)
        + (2 * 3 / 4 * (b / 16) / inter + 6 * h)
    )
    ag = ar / 2
    a2a = 2 * (3 / 2 * b / bw + 3 * h) + (3 / 2 * b / inter + 3 * h)
    us = "trn2-ultraserver"
    assert instance_collective_us(us, "all_reduce", b) == pytest.approx(ar / 1000)
    assert instance_collective_us(us, "all_gather", b) == pytest.approx(ag / 1000)
    assert instance_collective_us(us, "reduce_scatter", b) == pytest.approx(ag / 1000)
    assert instance_collective_us(us, "all_to_all", b) == pytest.approx(a2a / 1000)
    # one node's 16 chips: the 4x4 torus alone, no ring between nodes
    one_node = (2 * 3 / 4 * b / bw + 6 * h) + (2 * 3 / 4 * (b / 4) / bw + 6 * h)
    assert instance_collective_us(us, "all_reduce", b, devices=16) == pytest.approx(one_node / 1000)


@pytest.mark.parametrize("instance,chips", [("trn3-ultraserver", 64), ("trn3-ultraserver-gen2", 144)])
def test_trn3_ultraservers_switch_all_to_all(instance: str, chips: int) -> None:
    inst = get_spec("trn3").instance(instance)
    bw, h = inst.link_bytes_per_ns, inst.hop_latency_ns
    assert inst.chips == chips and inst.topology.value == "all_to_all"
    for b in SIZES:
        assert instance_collective_us(instance, "all_reduce", b) == pytest.approx(
            (2 * (chips - 1) / chips * b / bw + 2 * h) / 1000
        )
        for kind in ("all_gather", "reduce_scatter", "all_to_all"):
            assert instance_collective_us(instance, kind, b) == pytest.approx(((chips - 1) / chips * b / bw + h) / 1000)


def test_b200_nvl8_is_an_nvlink_switch_and_matches_the_gpu_model() -> None:
    spec = load_gpu_preset("b200")
    ic = spec.interconnect
    bus = ic.nvlink_gb_per_s / 2 * ic.allreduce_bus_efficiency  # GB/s = bytes/ns
    for b in SIZES:
        for n in (2, 4, 8):
            ar = instance_collective_us("p6-b200.48xlarge", "all_reduce", b, devices=n)
            assert ar == pytest.approx(ic.allreduce_latency_s * 1e6 + 2 * (n - 1) / n * b / bus / 1000)
            assert ar == pytest.approx(GpuModel(spec).allreduce_time_s(b, n) * 1e6)
            a2a = instance_collective_us("p6-b200.48xlarge", "all_to_all", b, devices=n)
            assert a2a == pytest.approx(ic.allreduce_latency_s * 1e6 + (n - 1) / n * b / bus / 1000)
    # NVLink 5 has twice the per-GPU bandwidth of the H100's NVLink 4: large all-to-alls take half the wire time
    big = 1e10
    h100 = instance_collective_us("p5.48xlarge", "all_to_all", big) - 10.0
    b200 = instance_collective_us("p6-b200.48xlarge", "all_to_all", big) - 10.0
    assert h100 / b200 == pytest.approx(2.0)


@pytest.mark.parametrize("target", ["trn1", "trn2", "trn3", "inf2"])
def test_all_reduce_and_all_gather_agree_with_the_tensor_parallel_costs(target: str) -> None:
    spec = get_spec(target)
    for inst in spec.instances:
        fabric = fabric_of(inst)
        for chips in sorted({1, min(2, inst.chips), inst.chips // 2 or 1, inst.chips}):
            place = Placement(tp=chips, ranks_per_chip=1, chips=chips, instance=inst)
            for b in SIZES:
                assert collective_ns(fabric, "all_reduce", b, chips) == pytest.approx(
                    all_reduce_us(spec, place, b) * 1e3
                )
                assert collective_ns(fabric, "all_gather", b, chips) == pytest.approx(
                    all_gather_us(spec, place, b) * 1e3
                )


def test_trn2_torus_all_to_all_relays_along_each_ring() -> None:
    inst = get_spec("trn2").instance("trn2.48xlarge")
    bw, h = inst.link_bytes_per_ns, inst.hop_latency_ns
    b = float(SIZES[0])
    assert instance_collective_us("trn2.48xlarge", "all_to_all", b) == pytest.approx(2 * (1.5 * b / bw + 3 * h) / 1000)
    # on a ring the all-to-all is p/2 times the all-gather's wire time (each block travels half the ring)
    ring = get_spec("inf2").instance("inf2.48xlarge")
    p = ring.chips
    wire_a2a = instance_collective_us(ring.name, "all_to_all", 1e12) - (p - 1) * ring.hop_latency_ns / 1000
    wire_ag = instance_collective_us(ring.name, "all_gather", 1e12) - (p - 1) * ring.hop_latency_ns / 1000
    assert wire_a2a / wire_ag == pytest.approx(p / 2)


def test_bad_requests_are_clear_errors() -> None:
    with pytest.raises(SpecError, match=r"known: .*trn2-ultraserver"):
        instance_collective_us("trn9.huge", "all_reduce", 1.0)
    with pytest.raises(SpecError, match="one of all_reduce"):
        instance_collective_us("trn2.48xlarge", "broadcast", 1.0)
    with pytest.raises(SpecError, match=r"spans 1\.\.8 devices"):
        instance_collective_us("p5.48xlarge", "all_reduce", 1.0, devices=9)
