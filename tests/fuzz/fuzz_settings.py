"""Hypothesis settings for the fuzz suites: a fixed slice of examples per CI run, or new ones on request.

By default every run draws the same examples (derandomize), so CI is reproducible and fast. Set
TRNSIM_FUZZ_SEED=<int> to draw a different slice, TRNSIM_FUZZ_SEED=random for a fresh one (pytest's header
prints the seed it drew), and TRNSIM_FUZZ_SCALE=<x> for x times as many examples. A failure prints the
falsifying example (a generated kernel's source) and how to reproduce it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, seed, settings

_SEED_TEXT = os.environ.get("TRNSIM_FUZZ_SEED")
SEED = str(secrets.randbits(32)) if _SEED_TEXT == "random" else _SEED_TEXT
SCALE = float(os.environ.get("TRNSIM_FUZZ_SCALE", "1"))


def fuzz(examples: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`examples` per run (times TRNSIM_FUZZ_SCALE), derandomized unless TRNSIM_FUZZ_SEED is set."""

    def wrap(test: Callable[..., Any]) -> Callable[..., Any]:
        configured = settings(
            max_examples=max(1, int(examples * SCALE)),
            derandomize=SEED is None,
            deadline=None,
            database=None,
            print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )(test)
        return seed(int(SEED))(configured) if SEED is not None else configured

    return wrap
