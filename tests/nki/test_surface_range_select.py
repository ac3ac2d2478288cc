"""nisa.range_select (NC-v3+) against the documented numpy equivalent: a window on the free index
(+ range_start) per partition, FP32_MIN elsewhere, the running max across calls; its rules as clear errors in
both modes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import DtypeError, ShapeMismatchError, UsageError

FP32_MIN = np.finfo(np.float32).min
COMPARE = {"greater_equal": np.greater_equal, "less": np.less, "less_equal": np.less_equal, "greater": np.greater}


@nki.jit
def windowed_max(x, lo, hi, c0, c1, start):
    t, b0, b1 = nl.load(x), nl.load(lo), nl.load(hi)
    y = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf)
    r = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
    half = x.shape[1] // 2
    nisa.range_select(y[:, 0:half], t[:, 0:half], c0, c1, b0, b1, range_start=start)
    nisa.range_select(
        y[:, half : x.shape[1]],
        t[:, half : x.shape[1]],
        c0,
        c1,
        b0,
        b1,
        reduce_cmd=nisa.reduce_cmd.reduce,
        reduce_res=r,
        range_start=start + half,
    )
    out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    out_r = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, y)
    nl.store(out_r, r)
    return out, out_r


@pytest.mark.parametrize(("c0", "c1"), [("greater_equal", "less"), ("greater", "less_equal")])
def test_range_select_matches_the_documented_numpy(rng: np.random.Generator, c0: str, c1: str) -> None:
    p, f = int(rng.integers(1, 129)), 2 * int(rng.integers(2, 200))
    start = int(rng.integers(0, 1000))
    x = rng.standard_normal((p, f)).astype(np.float32)
    lo = (start + rng.integers(0, f, size=(p, 1))).astype(np.float32)
    hi = lo + rng.integers(1, f, size=(p, 1)).astype(np.float32)
    y, r = nki.simulate(windowed_max, target="trn3")(x, lo, hi, getattr(nl, c0), getattr(nl, c1), start)
    index = (start + np.arange(f, dtype=np.float32))[None, :]
    want = np.where(COMPARE[c0](index, lo) & COMPARE[c1](index, hi), x, FP32_MIN)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(r[:, 0], want.max(axis=1))


@nki.jit
def bad(which):
    t = nl.ndarray((32, 64), dtype=nl.float32, buffer=nl.sbuf)
    b = nl.ndarray((32, 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.memset(dst=t, value=1.0)
    nisa.memset(dst=b, value=1.0)
    y = nl.ndarray((32, 64), dtype=nl.float32, buffer=nl.sbuf)
    if which == "comp":
        nisa.range_select(y, t, nl.not_equal, nl.less, b, b)
    elif which == "on-false":
        nisa.range_select(y, t, nl.greater, nl.less, b, b, on_false_value=0.0)
    elif which == "bound-shape":
        nisa.range_select(y, t, nl.greater, nl.less, t, b)
    elif which == "bound-dtype":
        bh = nl.ndarray((32, 1), dtype=nl.bfloat16, buffer=nl.sbuf)
        nisa.range_select(y, t, nl.greater, nl.less, bh, b)
    elif which == "reduce-op":
        nisa.range_select(y, t, nl.greater, nl.less, b, b, reduce_op=nl.add)
    elif which == "plain":
        nisa.range_select(y, t, nl.greater, nl.less, b, b)
    out = nl.ndarray((1, 1), dtype=nl.float32, buffer=nl.shared_hbm)
    return out


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("comp", UsageError, "comp_op0 must be one of"),
        ("on-false", UsageError, "on_false_value must be FP32_MIN"),
        ("bound-shape", ShapeMismatchError, "bound0 must be [32, 1]"),
        ("bound-dtype", DtypeError, "bound0 must be float32"),
        ("reduce-op", UsageError, "reduce_op must be maximum"),
    ],
)
@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_range_select_rules_are_clear_errors_in_both_modes(which: str, error: Any, words: str, mode: str) -> None:
    with pytest.raises(error) as info:
        nki.profile(bad, target="trn3", mode=mode)(which)  # type: ignore[arg-type]
    assert words in str(info.value) and "test_surface_range_select.py" in str(info.value)


def test_range_select_needs_neuroncore_v3() -> None:
    with pytest.raises(UsageError, match="NeuronCore-v3") as info:
        nki.profile(bad, target="trn1", mode="timing")("plain")  # type: ignore[arg-type]
    assert info.value.rule == "range-select-target"
