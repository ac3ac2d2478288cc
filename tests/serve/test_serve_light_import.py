"""`import trnsim.serve` / `trnsim.sweep` load no torch: the compiler (and torch) come in when a step grid is built
from estimates, not for a sweep's or a serve's driver process, whose points run elsewhere or from cached tables.
Each check runs in a fresh interpreter and reads sys.modules."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _loaded_after(statement: str) -> set[str]:
    heavy = ("torch", "ml_dtypes", "numba")
    code = f"import sys\n{statement}\nprint(' '.join(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stdout.split())


@pytest.mark.parametrize("module", ["trnsim.serve", "trnsim.sweep"])
def test_serving_packages_load_no_torch(module: str) -> None:
    assert _loaded_after(f"import {module}") == set()


def test_estimated_step_cost_still_reaches_the_compiler() -> None:
    """The names stay importable from trnsim.serve, and building a grid loads the compiler it needs."""
    loaded = _loaded_after(
        "from trnsim.serve import estimated_step_cost, EstimatedStepCost, StepComponents\n"
        "import trnsim.serve.estimate_step_cost as e\n"
        "e._ep_parts  # noqa\n"
        "from trnsim.compiler.kernel_runner import extrapolation"
    )
    assert "torch" in loaded
