"""Sweeps write each finished row as it arrives and resume from them; fields a step cost ignores are named."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from trnsim.cli import app
from trnsim.hw import get_spec
from trnsim.sweep import parse_sets, run_sweep
from trnsim.sweep.field_effect import fields_without_effect
from trnsim.sweep.row_log import RowLog, point_key


class StopAfter:
    """An evaluator that is interrupted (as by Ctrl-C) after `n` points."""

    def __init__(self, inner, n: int) -> None:
        self.inner, self.n, self.calls = inner, n, 0

    def __call__(self, point):
        if self.calls == self.n:
            raise KeyboardInterrupt
        self.calls += 1
        return self.inner(point)


def test_interrupted_sweep_resumes_with_only_the_missing_points(evaluator, rng, tmp_path) -> None:
    hbm = sorted({round(float(v)) for v in rng.uniform(1500, 6000, 3)})
    points = parse_sets([f"chip.hbm_bytes_per_ns={','.join(map(str, hbm))}", "tp=2,4"]).points()
    complete = [evaluator(p) for p in points]
    stopped_at = int(rng.integers(1, len(points)))

    log = RowLog(tmp_path / "rows.jsonl", "settings-a")
    first = StopAfter(evaluator, stopped_at)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(points, first, workers=1, progress=False, on_row=lambda i, row: log.append(points[i], row))
    assert len(tmp_path.joinpath("rows.jsonl").read_text().splitlines()) == 1 + stopped_at

    again = RowLog(tmp_path / "rows.jsonl", "settings-a")
    todo = [p for p in points if point_key(p) not in again.finished]
    assert len(todo) == len(points) - stopped_at
    second = StopAfter(evaluator, len(points))
    run_sweep(todo, second, workers=1, progress=False, on_row=lambda i, row: again.append(todo[i], row))
    assert second.calls == len(todo)
    assert [again.finished[point_key(p)] for p in points] == json.loads(json.dumps(complete))

    other = RowLog(tmp_path / "rows.jsonl", "settings-b")  # other settings: nothing is reused
    assert other.finished == {}


def test_fields_the_roofline_step_cost_does_not_read() -> None:
    spec = get_spec("trn2")
    space = parse_sets(["core.dma.queue_bytes_per_ns=23,46", "chip.hbm_bytes_per_ns=2900,5800", "tp=1,2"])
    assert fields_without_effect(space, spec, "roofline", 1, "trn2.48xlarge") == ["core.dma.queue_bytes_per_ns"]
    assert fields_without_effect(space, spec, "estimate", 1, "trn2.48xlarge") == []


def test_cli_warns_and_resumes(tmp_path) -> None:
    args = ["sweep", "--model", "llama-3.1-8b", "--requests", "12", "--prompt", "64", "--output", "8"]
    args += ["--step-cost", "roofline", "--rate", "2", "--workers", "1", "--out", str(tmp_path), "--json"]
    first = CliRunner().invoke(app, [*args, "--set", "core.dma.queue_bytes_per_ns=23,46"])
    assert first.exit_code == 0, first.output
    assert "core.dma.queue_bytes_per_ns does not change the roofline step cost" in first.output
    second = CliRunner().invoke(app, [*args, "--set", "core.dma.queue_bytes_per_ns=23,46,92"])
    assert second.exit_code == 0, second.output
    assert "resuming: 2 of 3 points" in second.output
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == 1 + 3
