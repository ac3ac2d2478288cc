"""Every examples/*.py runs as a user would run it (a fresh process, its own folder) and prints what it promises.

New examples are picked up by the glob; the ones listed in EXPECTED also have their output checked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))
TIMEOUT_S = 180  # a generous ceiling for a shared CI machine; each example takes seconds when the CPU is free


def _number(pattern: str, check: Callable[[float], bool]) -> Callable[[str], bool]:
    """The first group of `pattern` in the output, read as a number, passes `check`."""

    def test(out: str) -> bool:
        m = re.search(pattern, out)
        return m is not None and check(float(m.group(1).replace(",", "")))

    return test


def _has(pattern: str) -> Callable[[str], bool]:
    return lambda out: re.search(pattern, out, re.MULTILINE) is not None


# What each example's output must show (beyond exiting with 0): (description, predicate on stdout).
EXPECTED: dict[str, list[tuple[str, Callable[[str], bool]]]] = {
    "01_kernel_profile.py": [
        ("kernel equals numpy", _number(r"max \|error\| vs numpy: (\S+)", lambda e: e < 1e-6)),
        ("positive latency", _number(r"latency ([\d.,]+) us, bottleneck", lambda t: t > 0)),
        ("timing mode ran", _number(r"timing mode, 8192x8192 bf16: ([\d.,]+) us", lambda t: t > 0)),
    ],
    "02_legacy_nki.py": [
        ("bf16 matmul close to numpy", _number(r"max error relative to max \|ref\|: (\S+)", lambda e: e < 2e-2)),
        ("benchmark latency", _number(r"benchmark p50 latency: ([\d.]+) us", lambda t: t > 0)),
    ],
    "03_torch_compile.py": [
        ("compiled equals eager", _number(r"max \|trnsim - eager\| = (\S+)", lambda e: e < 1e-3)),
        ("device time", _number(r"device time ([\d.,]+) us", lambda t: t > 0)),
        ("attention lowered to the library kernel", _has(r"^kernels: .*flash_attention")),
    ],
    "04_estimate_70b.py": [
        ("prefill time", _number(r"prefill of 512 tokens: ([\d.,]+) ms per rank", lambda t: t > 0)),
        ("80 layers reported", _has(r"80 layers, tp=16")),
    ],
    "05_serving.py": [
        ("trn2 row", _has(r"^trn2 \(1 chip\)\s+\d+/\d+\s+[\d.]+\s+\d+\s+\d+%")),
        ("H100 row", _has(r"^H100 \(1 GPU\)\s+\d+/\d+\s+[\d.]+\s+\d+\s+\d+%")),
    ],
    "06_cost_plan.py": [
        ("replica capacity", _number(r"\(([\d,]+) tokens/s per replica", lambda t: t > 0)),
        ("two fleet plans", lambda out: len(re.findall(r"replicas [\d,]+, instances [\d,]+, chips [\d,]+", out)) == 2),
    ],
    "07_custom_lowering.py": [
        ("host fallback without a lowering", _has(r"host fallback ops: \['aten.cumprod.default'\]")),
        ("built-in cumsum kernel", _has(r"built-in cumsum: kernels \[.*'cumsum'.*\]")),
        ("no fallback after", _has(r"with the lowering: max \|error\| vs eager \S+, host fallback ops: \[\]")),
        ("matmul used", _has(r"kernels: \[.*'matmul'.*\]")),
    ],
}


def _run(script: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TRNSIM_CACHE_DIR=str(cwd / "cache"), MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 7, f"expected the examples under {EXAMPLES_DIR}"
    assert set(EXPECTED) <= {p.name for p in EXAMPLES}, "EXPECTED names an example that no longer exists"


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path, tmp_path: Path) -> None:
    proc = _run(script, tmp_path)
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.stdout.strip(), f"{script.name} printed nothing"
    noise = [line for line in proc.stderr.splitlines() if "Warning" in line or "Loading weights" in line]
    assert not noise, f"{script.name} printed foreign warnings or progress bars: {noise[:3]}"
    failed = [what for what, ok in EXPECTED.get(script.name, []) if not ok(proc.stdout)]
    assert not failed, f"{script.name} output lacks: {failed}\n{proc.stdout[-3000:]}"
    # Examples write only into their working folder's out/ (and the kernel cache the test pointed at).
    assert {p.name for p in tmp_path.iterdir()} <= {"out", "cache"}
    for trace in (tmp_path / "out").glob("*.json"):
        assert json.loads(trace.read_text())["traceEvents"], f"{trace.name} has no events"


def test_an_example_writes_where_it_is_told(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "traces"
    proc = _run(EXAMPLES_DIR / "01_kernel_profile.py", tmp_path, str(target))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((target / "scaled_add.trace.json").read_text())["traceEvents"]
    assert not (tmp_path / "out").exists()
