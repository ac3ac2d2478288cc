"""The trnsim command line: hw list/show, kernel FILE:FUNC, errors as one clear line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

KERNEL = textwrap.dedent(
    """
    import neuronxcc.nki as nki
    import neuronxcc.nki.language as nl

    @nki.jit
    def scale_add(a, b):
        out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
        x = nl.load(a)
        y = nl.load(b)
        nl.store(out, value=x * 2.0 + y)
        return out
    """
)


def trnsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trnsim", *args], capture_output=True, text=True, timeout=120)


def test_hw_list_and_show_json() -> None:
    listed = json.loads(trnsim("hw", "list", "--json").stdout)
    assert [r["name"] for r in listed] == ["inf2", "trn1", "trn2", "trn3"]
    shown = json.loads(trnsim("hw", "show", "trn2", "--json").stdout)
    assert shown["spec"]["core"]["tensor"]["clock_ghz"] == 2.4
    assert (
        "trainium2" in shown["sources"]["core.tensor.clock_ghz"].lower()
        or "[arch2]" in shown["sources"]["core.tensor.clock_ghz"]
    )


def test_kernel_command_profiles_a_legacy_kernel(tmp_path: Path) -> None:
    path = tmp_path / "k.py"
    path.write_text(KERNEL)
    trace = tmp_path / "t.json"
    res = trnsim(
        "kernel",
        f"{path}:scale_add",
        "--arg",
        "128x256:bfloat16",
        "--arg",
        "128x256:bfloat16",
        "--trace",
        str(trace),
        "--json",
    )
    assert res.returncode == 0, res.stderr
    prof = json.loads(res.stdout)
    assert prof["target"] == "trn2" and prof["instruction_count"] >= 4 and prof["latency_us"] > 0
    events = json.loads(trace.read_text())["traceEvents"]
    assert {e["args"]["name"] for e in events if e["name"] == "thread_name"} >= {"tensor", "vector", "dma q0"}
    # 2 loads + 1 store of 128x256 bf16 on HBM
    assert prof["hbm_bytes"] == 3 * 128 * 256 * 2
    assert np.isclose(
        sum(e["dur"] for e in events if e.get("ph") == "X" and e["cat"] == "dma_copy") * 1000,
        sum(v["busy_us"] for k, v in prof["by_opcode"].items() if k == "dma_copy") * 1000,
    )


def test_user_errors_are_one_line_with_hint(tmp_path: Path) -> None:
    path = tmp_path / "k.py"
    path.write_text(KERNEL)
    res = trnsim("kernel", f"{path}:scale_add", "--arg", "256x64", "--arg", "256x64")
    assert res.returncode == 2
    assert "partition dim 256, exceeds 128" in res.stderr.replace("\n", " ")
    assert f"{path}:8: [partition-dim]" in res.stderr.splitlines()[0]  # the nl.load line
    assert "Traceback" not in res.stderr
    res = trnsim("kernel", f"{path}:missing", "--arg", "1")
    assert res.returncode == 2 and "no function 'missing'" in res.stderr
    res = trnsim("kernel", f"{path}:scale_add", "--arg", "12xq")
    assert res.returncode == 2 and "expected SHAPE[:DTYPE]" in res.stderr
    res = trnsim("hw", "show", "trn9")
    assert res.returncode == 2 and "unknown hardware preset" in res.stderr


def test_hw_show_fits_80_columns_in_human_units_with_a_source_legend() -> None:
    env = {**os.environ, "COLUMNS": "80"}
    res = subprocess.run(
        [sys.executable, "-m", "trnsim", "hw", "show", "trn3"], capture_output=True, text=True, timeout=120, env=env
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    raw = json.loads(trnsim("hw", "show", "trn3", "--json").stdout)["spec"]
    assert f"{raw['chip']['hbm_bytes'] / 2**30:g} GiB" in res.stdout and str(raw["chip"]["hbm_bytes"]) not in res.stdout
    assert f"{raw['chip']['hbm_bytes_per_ns'] / 1000:g} TB/s" in res.stdout  # 1 B/ns = 1 GB/s
    assert "pipeline_latency_cycles" in res.stdout and "…" not in res.stdout  # field names are never cut
    legend = res.stdout[res.stdout.index("sources") :]
    tags = set(re.findall(r"\[[a-z0-9]+\]", res.stdout[: res.stdout.index("sources")]))
    assert tags and all(tag in legend for tag in tags), tags


def test_hw_list_shows_the_modelled_and_published_peak() -> None:
    env = {**os.environ, "COLUMNS": "80"}
    res = subprocess.run(
        [sys.executable, "-m", "trnsim", "hw", "list"], capture_output=True, text=True, timeout=120, env=env
    )
    assert res.returncode == 0, res.stderr
    assert max(len(line) for line in res.stdout.splitlines()) <= 80
    trn2 = next(line for line in res.stdout.splitlines() if line.strip().startswith("trn2 "))
    # 128 x 128 PEs x 2 FLOP x 2.4 GHz x 8 cores = 629 TFLOPS simulated; AWS publishes 667 ([chip2])
    assert "629 / 667" in trn2 and "2.9 TB/s" in trn2 and "96 GiB" in trn2
