"""Sweep spaces: grid expansion against itertools.product, seeded sampling, parsing --set and TOML files."""

from __future__ import annotations

import itertools

import pytest

from trnsim.hw import load_preset
from trnsim.sweep import Axis, SweepError, SweepSpace, make_space, parse_set, parse_sets, read_space_file

TRN2 = load_preset("trn2")


def _random_space(rng, n_axes: int) -> SweepSpace:
    axes = []
    for k in range(n_axes):
        n = int(rng.integers(1, 5))
        values = rng.choice(1000, size=n, replace=False).tolist()
        axes.append(Axis(f"chip.field{k}", tuple(values)))
    return SweepSpace(tuple(axes))


def test_grid_equals_itertools_product(rng) -> None:
    for _ in range(20):
        space = _random_space(rng, int(rng.integers(1, 5)))
        names = [a.name for a in space.axes]
        expected = [dict(zip(names, combo)) for combo in itertools.product(*(a.values for a in space.axes))]
        assert space.points() == expected
        assert space.grid_size == len(expected)


def test_sampling_picks_distinct_grid_points_reproducibly(rng) -> None:
    space = _random_space(rng, 4)
    while space.grid_size < 6:
        space = _random_space(rng, 4)
    k = int(rng.integers(1, space.grid_size))
    seed = int(rng.integers(1 << 30))
    sampled = SweepSpace(space.axes, samples=k, seed=seed).points()
    grid = space.points()
    assert len(sampled) == k
    assert len({tuple(p.values()) for p in sampled}) == k
    positions = [grid.index(p) for p in sampled]
    assert positions == sorted(positions)  # in grid order
    assert SweepSpace(space.axes, samples=k, seed=seed).points() == sampled
    assert SweepSpace(space.axes, samples=space.grid_size + 3, seed=seed).points() == grid


def test_parse_set_types_values() -> None:
    axis = parse_set("chip.hbm_bytes_per_ns=2900, 4000.5 ,5e3")
    assert axis.name == "chip.hbm_bytes_per_ns" and axis.values == (2900, 4000.5, 5000.0)
    assert isinstance(axis.values[0], int)
    assert parse_set("scheduler=continuous,chunked").values == ("continuous", "chunked")
    space = parse_sets(["tp=1,2", "chip.hbm_bytes_per_ns=2900,5800", "scheduler=static"], spec=TRN2)
    assert space.grid_size == 4 and [a.name for a in space.axes] == ["tp", "chip.hbm_bytes_per_ns", "scheduler"]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["chip.hbm_gbps=1,2"], "chip.hbm_bytes_per_ns"),  # close match suggested
        (["core.clock_ghz=2"], "core.tensor.clock_ghz"),
        (["tensor_parallel=2"], "unknown sweep field"),
        (["tp=0"], "whole number >= 1"),
        (["scheduler=fifo"], "continuous"),
        (["rate=1", "concurrency=2"], "not both"),
        (["tp=1", "tp=2"], "given twice"),
        (["tp=1,1"], "repeats a value"),
        (["tp"], "NAME=V1,V2"),
        (["core.sbuf.partition_bytes=-5"], "core.sbuf.partition_bytes"),  # pydantic names the field
        (["prompt=10-5"], "prompt"),
    ],
)
def test_bad_sets_raise_clear_errors(sets: list[str], message: str) -> None:
    with pytest.raises(Exception) as info:
        parse_sets(sets, spec=TRN2)
    assert message in str(info.value)
    from trnsim.errors import TrnsimError

    assert isinstance(info.value, TrnsimError)


def test_space_file_with_dotted_and_quoted_keys(tmp_path) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(
        "samples = 3\nseed = 7\n[set]\nchip.hbm_bytes_per_ns = [2900, 5800]\ncore.tensor.clock_ghz = [2.4, 3.0]\n"
        '"instances[trn2.48xlarge].link_bytes_per_ns" = [1024, 2048]\ntp = 4\n'
    )
    space = read_space_file(path, TRN2)
    assert [a.name for a in space.axes] == [
        "chip.hbm_bytes_per_ns",
        "core.tensor.clock_ghz",
        "instances[trn2.48xlarge].link_bytes_per_ns",
        "tp",
    ]
    assert space.grid_size == 8 and len(space.points()) == 3 and space.seed == 7
    # --set replaces a file axis of the same name and adds new ones
    merged = parse_sets(["tp=1,2", "max_batch=8"], base=space.axes, spec=TRN2)
    assert merged.grid_size == 16 and dict((a.name, a.values) for a in merged.axes)["tp"] == (1, 2)


def test_space_file_errors_name_the_line(tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[set]\ntp = [1, 2]\nchip.hbm_gbps = [1, 2]\n")
    with pytest.raises(SweepError, match=r"bad.toml:3: .*chip.hbm_bytes_per_ns"):
        read_space_file(path, TRN2)
    path.write_text("seed = 1\nsampels = 4\n[set]\ntp = [1]\n")
    with pytest.raises(SweepError, match=r"bad.toml:2: unknown key 'sampels'"):
        read_space_file(path, TRN2)
    path.write_text("[set]\ntp = [1, 2]\nrate = = 3\n")
    with pytest.raises(SweepError, match=r"not valid TOML.*line"):
        read_space_file(path, TRN2)


def test_make_space_without_spec_accepts_dotted_hardware_paths() -> None:
    assert make_space([Axis("chip.hbm_bytes_per_ns", (1.0,))]).grid_size == 1
    with pytest.raises(SweepError, match="unknown sweep field 'hbm'"):
        make_space([Axis("hbm", (1.0,))])
