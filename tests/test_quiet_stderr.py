"""No foreign noise on stderr: torch's deprecation notices, Ray's log lines, leaked-semaphore warnings.

Each case runs in a fresh interpreter with Python's default warning filters, as a user's script would, and
fails on any line on stderr that trnsim did not print on purpose.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

LIBRARY_ESTIMATE = textwrap.dedent(
    """
    import torch
    import trnsim

    with torch.device("meta"):
        net = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.GELU(), torch.nn.Linear(512, 256))
        x = torch.zeros(4, 256)
    prof = trnsim.estimate(net, (x,), target="trn2")
    assert prof.device_time_us > 0
    print("ok")
    """
)

SWEEP = ["sweep", "--model", "llama-3.1-8b", "--requests", "12", "--prompt", "64", "--output", "8", "--rate", "2"]
SWEEP += ["--step-cost", "roofline", "--set", "chip.hbm_bytes_per_ns=2900,5800"]


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS",)}
    env["TRNSIM_CACHE_DIR"] = str(tmp_path / "cache")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)


def _foreign_lines(stderr: str, ours: tuple[str, ...] = ()) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(ours)]


def test_library_estimate_is_quiet(tmp_path: Path) -> None:
    res = _run(["-c", LIBRARY_ESTIMATE], tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
    assert _foreign_lines(res.stderr) == []


@pytest.mark.parametrize("runner", [["--workers", "2"], ["--ray", "--workers", "2"]], ids=["processes", "ray"])
def test_sweep_workers_are_quiet(tmp_path: Path, runner: list[str]) -> None:
    res = _run(["-m", "trnsim", *SWEEP, *runner, "--out", str(tmp_path / "out")], tmp_path)
    assert res.returncode == 0, res.stderr
    # the sweep's own lines: where it wrote its files, and its note on the offered load
    assert _foreign_lines(res.stderr, ours=("wrote ", "note: ")) == []
    assert "sweep.csv" in res.stderr
