"""Pareto fronts against a brute-force dominance check; CSV/Parquet round trips; the Pareto plot files."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from trnsim.sweep import pareto_front, plot_pareto, read_csv, read_parquet, write_csv, write_parquet


def _brute_force_front(rows, x, y, minimize_x, maximize_y):
    def better_or_equal(a, b):  # a at least as good as b on both
        ok_x = a[x] <= b[x] if minimize_x else a[x] >= b[x]
        ok_y = a[y] >= b[y] if maximize_y else a[y] <= b[y]
        return ok_x and ok_y

    usable = [r for r in rows if r[x] is not None and r[y] is not None]
    return [
        r
        for r in usable
        if not any(better_or_equal(o, r) and (o[x], o[y]) != (r[x], r[y]) for o in usable if o is not r)
    ]


@pytest.mark.parametrize(("minimize_x", "maximize_y"), list(itertools.product([True, False], repeat=2)))
def test_pareto_front_equals_brute_force(rng, minimize_x: bool, maximize_y: bool) -> None:
    for _ in range(30):
        n = int(rng.integers(1, 60))
        # small integer grids make ties (equal x, equal y, duplicate points) common
        xs = rng.integers(0, 8, n).astype(float) if rng.random() < 0.5 else rng.random(n)
        ys = rng.integers(0, 8, n).astype(float) if rng.random() < 0.5 else rng.random(n)
        rows = [{"id": i, "c": float(a), "t": float(b)} for i, (a, b) in enumerate(zip(xs, ys))]
        for r in rows[: int(rng.integers(0, 3))]:
            r["c"] = None  # failed points take no part
        got = pareto_front(rows, "c", "t", minimize_x=minimize_x, maximize_y=maximize_y)
        expected = _brute_force_front(rows, "c", "t", minimize_x, maximize_y)
        assert sorted(r["id"] for r in got) == sorted(r["id"] for r in expected)
        xs_front = [r["c"] for r in got]
        assert xs_front == sorted(xs_front, reverse=not minimize_x)


def _random_rows(rng, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        rows.append(
            {
                "chip.hbm_bytes_per_ns": float(rng.uniform(1000, 6000)),
                "tp": int(rng.integers(1, 65)),
                "scheduler": str(rng.choice(["continuous", "chunked"])),
                "throughput_tok_s": float(rng.random() * 1e4) if i % 4 else None,
                "usd_per_mtok": float(rng.random() * 10) if i % 4 else None,
                "preemptions": int(rng.integers(0, 5)) if i % 4 else None,
                "error": None if i % 4 else "tp=3 does not divide the 64 tp ranks, of one trn2.48xlarge",
            }
        )
    return rows


def test_csv_round_trip(tmp_path, rng) -> None:
    rows = _random_rows(rng, 13)
    path = write_csv(rows, tmp_path / "deep" / "sweep.csv")
    assert read_csv(path) == rows
    assert path.read_text().splitlines()[0] == ",".join(rows[0])


def test_parquet_round_trip(tmp_path, rng) -> None:
    pytest.importorskip("pyarrow")
    rows = _random_rows(rng, 13)
    assert read_parquet(write_parquet(rows, tmp_path / "sweep.parquet")) == rows


def test_pareto_plot_files(tmp_path, rng) -> None:
    import matplotlib.image

    rows = _random_rows(rng, 25)
    paths = plot_pareto(rows, tmp_path / "pareto", ["chip.hbm_bytes_per_ns", "tp"])
    png, svg = paths
    assert png.suffix == ".png" and svg.suffix == ".svg"
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 300 and image.shape[1] > 400
    assert float(np.std(image[..., :3])) > 0.01  # not a blank canvas
    text = svg.read_text()
    assert "<svg" in text and "Pareto front" in text
    front = pareto_front(rows)
    assert f"{len(front)} on the Pareto front" in text
