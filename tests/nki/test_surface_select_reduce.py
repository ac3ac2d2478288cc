"""nisa.select_reduce against numpy: where(predicate, on_true, on_false) with a scalar or [P, 1] on_false,
reverse_pred, and the running max in the Vector engine's accumulator across calls; its rules as clear errors
in both modes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import DtypeError, ShapeMismatchError, UsageError


@nki.jit
def select_max(x, pred, on_false, reverse):
    t, p = nl.load(x), nl.load(pred)
    other = on_false if isinstance(on_false, float) else nl.load(on_false)
    y = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf)
    r = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
    half = x.shape[1] // 2
    # the first half resets the running max, the second continues it and reads it out
    nisa.select_reduce(
        y[:, 0:half], p[:, 0:half], t[:, 0:half], other, reduce_cmd=nisa.reduce_cmd.reset_reduce, reverse_pred=reverse
    )
    nisa.select_reduce(
        y[:, half : x.shape[1]],
        p[:, half : x.shape[1]],
        t[:, half : x.shape[1]],
        other,
        reduce_res=r,
        reduce_cmd=nisa.reduce_cmd.reduce,
        reverse_pred=reverse,
    )
    out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    out_r = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, y)
    nl.store(out_r, r)
    return out, out_r


@pytest.mark.parametrize("vector_on_false", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_select_reduce_matches_numpy(rng: np.random.Generator, vector_on_false: bool, reverse: bool) -> None:
    p, f = int(rng.integers(1, 129)), 2 * int(rng.integers(1, 200))
    x = rng.standard_normal((p, f)).astype(np.float32)
    pred = rng.integers(0, 3, size=(p, f)).astype(np.uint8)
    on_false: Any = rng.standard_normal((p, 1)).astype(np.float32) if vector_on_false else float(rng.normal())
    y, r = nki.simulate(select_max)(x, pred, on_false, reverse)
    keep = (pred == 0) if reverse else (pred != 0)
    want = np.where(keep, x, np.float32(on_false) if not vector_on_false else on_false)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(r[:, 0], want.max(axis=1))


@nki.jit
def bad(which):
    t = nl.ndarray((32, 64), dtype=nl.float32, buffer=nl.sbuf)
    nisa.memset(dst=t, value=1.0)
    pr = nl.ndarray((32, 64), dtype=nl.uint8, buffer=nl.sbuf)
    nisa.memset(dst=pr, value=1)
    y = nl.ndarray((32, 64), dtype=nl.float32, buffer=nl.sbuf)
    if which == "pred-dtype":
        nisa.select_reduce(y, t, t, 0.0)
    elif which == "on-true-int32":
        i = nl.ndarray((32, 64), dtype=nl.int32, buffer=nl.sbuf)
        nisa.select_reduce(y, pr, i, 0.0)
    elif which == "reduce-op":
        nisa.select_reduce(y, pr, t, 0.0, reduce_cmd=nisa.reduce_cmd.reset_reduce, reduce_op=nl.add)
    elif which == "reduce-shape":
        r = nl.ndarray((32, 2), dtype=nl.float32, buffer=nl.sbuf)
        nisa.select_reduce(y, pr, t, 0.0, reduce_res=r, reduce_cmd=nisa.reduce_cmd.reset_reduce)
    elif which == "both-psum":
        tp = nl.ndarray((32, 64), dtype=nl.float32, buffer=nl.psum)
        pp = nl.ndarray((32, 64), dtype=nl.uint8, buffer=nl.psum)
        nisa.memset(dst=tp, value=1.0)
        nisa.memset(dst=pp, value=1)
        nisa.select_reduce(y, pp, tp, 0.0)
    out = nl.ndarray((1, 1), dtype=nl.float32, buffer=nl.shared_hbm)
    return out


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("pred-dtype", DtypeError, "predicate must be int8, uint8, int16, uint16"),
        ("on-true-int32", DtypeError, "on_true cannot be int32"),
        ("reduce-op", UsageError, "reduce_op must be maximum"),
        ("reduce-shape", ShapeMismatchError, "reduce_res must be [32, 1]"),
        ("both-psum", UsageError, "cannot both be in PSUM"),
    ],
)
@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_select_reduce_rules_are_clear_errors_in_both_modes(which: str, error: Any, words: str, mode: str) -> None:
    with pytest.raises(error) as info:
        nki.profile(bad, target="trn2", mode=mode)(which)  # type: ignore[arg-type]
    assert words in str(info.value) and "test_surface_select_reduce.py" in str(info.value)
