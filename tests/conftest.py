"""Shared test fixtures: fresh random inputs every run, with the seed reported on failure."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import numpy as np
import pytest


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A generator seeded freshly each run; a failing test's report shows the seed to reproduce it."""
    seed = secrets.randbits(32)
    request.node.rng_seed = seed
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    seed = getattr(item, "rng_seed", None)
    if rep.failed and seed is not None:
        rep.sections.append(("random seed", f"np.random.default_rng({seed})"))
