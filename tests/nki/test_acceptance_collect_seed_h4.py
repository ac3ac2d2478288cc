"""The acceptance plugin's --trnsim-collect-seed makes a test file's sweep case ids reproducible.

nki-library draws its sweep cases while pytest collects: `random.sample` in class bodies and coverage_parametrize,
`np.random.choice` in test_attention_cte.py's sweep (nothing seeds numpy before collection). With one `random.seed`
for the whole session, a file's ids depended on the files collected before it and on numpy's random start, so a
sampled sweep's failing case (seed 3: rmsnorm_quant `[32128-3072-1-0.01]`) could not be collected again. The
plugin now reseeds both generators per test file. Checked here on two scratch test files: the second file's ids are
the same alone, after a file that consumes a random amount of both generators, and run to run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SHIMS = Path(__file__).resolve().parents[2] / "bench" / "nki_acceptance_shims"

# consumes a numpy-driven (unseeded before the fix) number of draws from both generators at import
NOISY = """
import random
import numpy as np
_n = int(np.random.randint(1, 1000))
for _ in range(_n):
    random.random()
np.random.random(_n)

def test_noisy():
    pass
"""

# draws its cases at import, from both generators, as nki-library's sweeps do
SWEEP = """
import random
import numpy as np
import pytest

CASES = sorted(random.sample(range(10**6), 4)) + [int(x) for x in np.random.choice(10**6, size=3)]

@pytest.mark.parametrize("n", CASES)
def test_sweep(n):
    pass
"""


def _collect(tmp_path: Path, files: list[str], seed: int | None) -> list[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SHIMS), os.environ.get("PYTHONPATH", "")]))
    argv = [sys.executable, "-m", "pytest", *files, "--collect-only", "-q", "-p", "no:cacheprovider"]
    argv += ["-p", "trnsim_nki_plugin", "-p", "no:randomly", "-c", str(tmp_path / "pytest.ini")]
    if seed is not None:
        argv += ["--trnsim-collect-seed", str(seed)]
    res = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return [line for line in res.stdout.splitlines() if line.startswith("test_sweep.py::")]


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_noisy.py").write_text(NOISY)
    (tmp_path / "test_sweep.py").write_text(SWEEP)
    return tmp_path


def test_file_ids_do_not_depend_on_the_files_before(scratch: Path) -> None:
    alone = _collect(scratch, ["test_sweep.py"], 3)
    assert len(alone) == 7
    runs = [_collect(scratch, ["test_noisy.py", "test_sweep.py"], 3) for _ in range(3)]
    assert all(run == alone for run in runs)  # before: each run differed (numpy's random start, via NOISY)


def test_other_seed_other_ids(scratch: Path) -> None:
    # the seed does choose the cases: another seed draws other ones (7 of 10**6 values: equal by chance ~never)
    assert _collect(scratch, ["test_sweep.py"], 3) != _collect(scratch, ["test_sweep.py"], 4)
