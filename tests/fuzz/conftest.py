"""Fixtures of the fuzz suites; generated kernels are written to real files so errors can name their lines."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # kernel_programs, random_modules, fuzz_settings (bench/ too)


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where generated kernels are written (a traceback and error location then name a real file and line)."""
    return tmp_path_factory.mktemp("fuzz_kernels")


def pytest_report_header() -> str:
    from fuzz_settings import SEED

    if SEED is None:
        return "trnsim fuzz: the fixed (derandomized) slice; TRNSIM_FUZZ_SEED=<n>|random draws another"
    return f"trnsim fuzz: seed {SEED} (TRNSIM_FUZZ_SEED={SEED} reproduces this run)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing fuzz test's report says which slice of examples it ran, to rerun exactly that."""
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    if rep.failed and item.path.parent == Path(__file__).parent:
        from fuzz_settings import SEED

        how = "the fixed slice (no TRNSIM_FUZZ_SEED)" if SEED is None else f"TRNSIM_FUZZ_SEED={SEED}"
        rep.sections.append(("fuzz seed", f"rerun with {how}"))
