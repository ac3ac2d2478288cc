"""Hops and point-to-point times between ranks over the instance topologies, against hand-worked cases."""

from __future__ import annotations

import pytest

from trnsim.hw.presets import get_spec
from trnsim.sim.collective_costs import Kind, collective_ns, hops, point_to_point_ns
from trnsim.sim.instance import layout


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        (0, 1, 1),
        (0, 3, 1),
        (0, 2, 2),
        (0, 5, 2),
        (0, 10, 4),
        (5, 15, 4),
        (1, 15, 3),
        (15, 0, 2),
    ],  # 4x4 torus, wrap-around
)
def test_torus_hops_are_manhattan_with_wraparound(a: int, b: int, want: int) -> None:
    lay = layout(get_spec("trn2"), 64, lnc=2)  # 16 chips of trn2.48xlarge (x = chip % 4, y = chip // 4)
    assert hops(lay, a, b) == want == hops(lay, b, a)


def test_ultraserver_nodes_form_a_ring_over_slower_links() -> None:
    spec = get_spec("trn2")
    inst = spec.instance("trn2-ultraserver")
    lay = layout(spec, 256, lnc=2, instance="trn2-ultraserver")  # 64 chips, 4 ranks each
    per_node = 16 * 4  # ranks per 16-chip node
    b = 1 << 20
    # rank 0 (node 0, chip 0) to the same chip position on node 3: one ring hop (wrap-around), 256 GB/s links
    assert hops(lay, 0, 48) == 1
    want = b / inst.inter_node_link_bytes_per_ns + inst.hop_latency_ns
    assert point_to_point_ns(lay, 0, 3 * per_node, b) == pytest.approx(want)
    # inside a chip: read and written through its HBM
    assert point_to_point_ns(lay, 0, 1, b) == pytest.approx(2 * b / spec.chip.hbm_bytes_per_ns)


def test_a_group_on_one_chip_pays_no_links() -> None:
    spec = get_spec("trn2")
    lay = layout(spec, 4, lnc=2)
    b = 4096.0
    assert collective_ns(lay, Kind.ALL_REDUCE, [0, 1, 2, 3], b) == pytest.approx(
        2 * 3 / 4 * 2 * b / spec.chip.hbm_bytes_per_ns
    )
    assert collective_ns(lay, Kind.ALL_GATHER, [2], b) == 0.0
