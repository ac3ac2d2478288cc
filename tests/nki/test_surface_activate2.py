"""NC-v4 nisa.activate2 against numpy: op((data op0 imm0) op1 imm1) for the six documented (op0, op1) pairs,
reversed operands, [P, 1] immediates, and the Scalar engine's reduction registers across calls
(reset_reduce, reduce, reset, idle read-out); its rules as clear errors in both modes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import ShapeMismatchError, UsageError

ALU = {"multiply": np.multiply, "add": np.add, "subtract": np.subtract}


@nki.jit
def act2(x, imm, func, op0, op1, reverse0, reverse1, imm_tile):
    t = nl.load(x)
    y = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf)
    i0 = imm[0] if imm_tile is None else nl.load(imm_tile)
    nisa.activate2(y, func, t, i0, imm[1], op0, op1, reverse0=reverse0, reverse1=reverse1)
    out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, y)
    return out


def reference(x: np.ndarray, func: Any, imm0: Any, imm1: float, op0: str, op1: str, r0: bool, r1: bool) -> Any:
    v = x.astype(np.float64)
    for op, imm, rev in ((op0, imm0, r0), (op1, imm1, r1)):
        if op != "bypass":
            v = ALU[op](imm, v) if rev else ALU[op](v, imm)
    return func(v)


@pytest.mark.parametrize(
    ("op0", "op1"),
    [
        ("multiply", "add"),
        ("multiply", "subtract"),
        ("multiply", "bypass"),
        ("add", "bypass"),
        ("subtract", "bypass"),
        ("bypass", "bypass"),
    ],
)
@pytest.mark.parametrize("imm_tile", [False, True])
def test_activate2_matches_numpy(rng: np.random.Generator, op0: str, op1: str, imm_tile: bool) -> None:
    p, f = int(rng.integers(1, 129)), int(rng.integers(1, 300))
    x = rng.standard_normal((p, f)).astype(np.float32)
    imm = (float(rng.uniform(0.5, 2)), float(rng.uniform(-1, 1)))
    r0, r1 = bool(rng.integers(2)) and op0 != "bypass", bool(rng.integers(2)) and op1 != "bypass"
    ops = [getattr(nl, o) if o != "bypass" else None for o in (op0, op1)]
    per_partition = rng.uniform(0.5, 2, size=(p, 1)).astype(np.float32) if imm_tile else None
    got = nki.simulate(act2, target="trn3")(x, imm, nl.tanh, ops[0], ops[1], r0, r1, per_partition)
    imm0 = imm[0] if per_partition is None else per_partition.astype(np.float64)
    want = reference(x, np.tanh, imm0, imm[1], op0, op1, r0, r1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@nki.jit
def act2_reduce(x, reduce_op):
    t = nl.load(x)
    half = x.shape[1] // 2
    y = nl.ndarray(x.shape, dtype=nl.bfloat16, buffer=nl.sbuf)
    r = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
    r2 = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
    # first half resets the registers, the second continues and reads them out; an idle call reads them again
    nisa.activate2(
        y[:, 0:half],
        nl.exp,
        t[:, 0:half],
        0.5,
        0.0,
        nl.multiply,
        None,
        reduce_op=reduce_op,
        reduce_cmd=nisa.reduce_cmd.reset_reduce,
    )
    nisa.activate2(
        y[:, half : x.shape[1]],
        nl.exp,
        t[:, half : x.shape[1]],
        0.5,
        0.0,
        nl.multiply,
        None,
        reduce_op=reduce_op,
        reduce_res=r,
        reduce_cmd=nisa.reduce_cmd.reduce,
    )
    nisa.activate2(y[:, 0:half], nl.exp, t[:, 0:half], 1.0, 0.0, nl.multiply, None, reduce_res=r2)
    out = nl.ndarray((x.shape[0], 2), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out[:, 0:1], r)
    nl.store(out[:, 1:2], r2)
    return out


@pytest.mark.parametrize(
    ("reduce_op", "ref"),
    [
        (nl.add, lambda v: v.sum(axis=1)),
        (nl.maximum, lambda v: v.max(axis=1)),
        (nl.minimum, lambda v: v.min(axis=1)),
        ("abs_max", lambda v: np.abs(v).max(axis=1)),
        ("abs_min", lambda v: np.abs(v).min(axis=1)),
    ],
)
def test_activate2_reduction_registers_persist_across_calls(rng: np.random.Generator, reduce_op: Any, ref: Any) -> None:
    p, f = int(rng.integers(1, 129)), 2 * int(rng.integers(1, 100))
    x = rng.standard_normal((p, f)).astype(np.float32)
    got = nki.simulate(act2_reduce, target="trn3")(x, reduce_op)
    want = ref(np.exp(0.5 * x.astype(np.float64)))  # reduced in fp32 before the bf16 cast of dst
    np.testing.assert_allclose(got[:, 0], want, rtol=1e-5)
    np.testing.assert_allclose(got[:, 1], want, rtol=1e-5)  # idle leaves the registers alone


@nki.jit
def bad(which):
    t = nl.ndarray((32, 64), dtype=nl.float32, buffer=nl.sbuf)
    nisa.memset(dst=t, value=0.0)
    y = nl.ndarray((32, 64), dtype=nl.float32, buffer=nl.sbuf)
    if which == "pair":
        nisa.activate2(y, nl.exp, t, 1.0, 1.0, nl.add, nl.add)
    elif which == "reverse-bypass":
        nisa.activate2(y, nl.exp, t, 1.0, 1.0, nl.multiply, None, reverse1=True)
    elif which == "no-reduce-op":
        nisa.activate2(y, nl.exp, t, 1.0, 1.0, nl.multiply, None, reduce_cmd=nisa.reduce_cmd.reset_reduce)
    elif which == "reduce-shape":
        r = nl.ndarray((32, 2), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activate2(
            y,
            nl.exp,
            t,
            1.0,
            1.0,
            nl.multiply,
            None,
            reduce_op=nl.add,
            reduce_res=r,
            reduce_cmd=nisa.reduce_cmd.reset_reduce,
        )
    elif which == "imm-shape":
        nisa.activate2(y, nl.exp, t, nl.ndarray((16, 1), dtype=nl.float32, buffer=nl.sbuf), 1.0, nl.multiply, None)
    elif which == "plain":
        nisa.activate2(y, nl.exp, t, 1.0, 1.0, nl.multiply, nl.add)
    out = nl.ndarray((1, 1), dtype=nl.float32, buffer=nl.shared_hbm)
    return out


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("pair", UsageError, "(add, add) is not supported"),
        ("reverse-bypass", UsageError, "reverse1=True needs op1"),
        ("no-reduce-op", UsageError, "needs reduce_op"),
        ("reduce-shape", ShapeMismatchError, "reduce_res must be [32, 1]"),
        ("imm-shape", ShapeMismatchError, "imm0 must be a scalar or a [32, 1] tile"),
    ],
)
@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_activate2_rules_are_clear_errors_in_both_modes(
    which: str, error: type[Exception], words: str, mode: str
) -> None:
    with pytest.raises(error) as info:
        nki.profile(bad, target="trn3", mode=mode)(which)  # type: ignore[arg-type]
    assert words in str(info.value) and "test_surface_activate2.py" in str(info.value)


def test_activate2_needs_neuroncore_v4() -> None:
    with pytest.raises(UsageError, match="NeuronCore-v4") as info:
        nki.profile(bad, target="trn2", mode="timing")("plain")  # type: ignore[arg-type]
    assert info.value.rule == "act2-target"
