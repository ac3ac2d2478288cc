"""nisa.tensor_scalar_cumulative against a numpy loop of the documented pseudocode (reg = op1(op0(x, imm0), reg)),
with reset_reduce, load_reduce (imm1) and reduce continuing the Vector engine's accumulator across calls;
its rules as clear errors in both modes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import DtypeError, UsageError

OPS = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "maximum": np.maximum, "minimum": np.minimum}
IDENTITY = {"add": 0.0, "subtract": 0.0, "multiply": 1.0, "maximum": -np.inf, "minimum": np.inf}


def pseudocode(x: np.ndarray, op0: str, imm0: float, op1: str, reg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = np.empty_like(x, dtype=np.float64)
    reg = reg.astype(np.float64).copy()
    for i in range(x.shape[1]):
        reg = OPS[op1](OPS[op0](x[:, i].astype(np.float64), imm0), reg)
        out[:, i] = reg
    return out, reg


@nki.jit
def cumulative(x, op0, op1, imm0, second_cmd, imm1):
    t = nl.load(x)
    y = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf)
    half = x.shape[1] // 2
    nisa.tensor_scalar_cumulative(y[:, 0:half], t[:, 0:half], op0, op1, imm0)
    nisa.tensor_scalar_cumulative(
        y[:, half : x.shape[1]], t[:, half : x.shape[1]], op0, op1, imm0, imm1=imm1, reduce_cmd=second_cmd
    )
    out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, y)
    return out


@pytest.mark.parametrize("op1", list(OPS))
@pytest.mark.parametrize("second", ["reduce", "load_reduce"])
def test_tensor_scalar_cumulative_matches_the_pseudocode(rng: np.random.Generator, op1: str, second: str) -> None:
    p, f = int(rng.integers(1, 129)), 2 * int(rng.integers(1, 40))
    x = rng.uniform(0.8, 1.2, size=(p, f)).astype(np.float32)
    imm0, imm1 = float(rng.uniform(0.9, 1.1)), float(rng.uniform(-2, 2))
    cmd = nisa.reduce_cmd.reduce if second == "reduce" else nisa.reduce_cmd.load_reduce
    got = nki.simulate(cumulative)(x, nl.multiply, getattr(nl, op1), imm0, cmd, imm1 if second != "reduce" else None)
    half = f // 2
    first, reg = pseudocode(x[:, :half], "multiply", imm0, op1, np.full(p, IDENTITY[op1]))
    start = reg if second == "reduce" else np.full(p, imm1)
    rest, _ = pseudocode(x[:, half:], "multiply", imm0, op1, start)
    np.testing.assert_allclose(got, np.concatenate([first, rest], axis=1), rtol=1e-4, atol=1e-5)


@nki.jit
def bad(which):
    t = nl.ndarray((32, 64), dtype=nl.float32, buffer=nl.sbuf)
    nisa.memset(dst=t, value=1.0)
    y = nl.ndarray((32, 64), dtype=nl.float32, buffer=nl.sbuf)
    if which == "op1":
        nisa.tensor_scalar_cumulative(y, t, nl.multiply, nl.divide, 1.0)
    elif which == "op0":
        nisa.tensor_scalar_cumulative(y, t, nl.bitwise_and, nl.add, 1)
    elif which == "load-without-imm1":
        nisa.tensor_scalar_cumulative(y, t, nl.multiply, nl.add, 1.0, reduce_cmd=nisa.reduce_cmd.load_reduce)
    elif which == "int32":
        y32 = nl.ndarray((32, 64), dtype=nl.int32, buffer=nl.sbuf)
        nisa.tensor_scalar_cumulative(y32, t, nl.multiply, nl.add, 1.0)
    out = nl.ndarray((1, 1), dtype=nl.float32, buffer=nl.shared_hbm)
    return out


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("op1", UsageError, "op1 must be one of"),
        ("op0", UsageError, "op0 must be an arithmetic op"),
        ("load-without-imm1", UsageError, "needs imm1"),
        ("int32", DtypeError, "int32/uint32 are not supported"),
    ],
)
@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_cumulative_rules_are_clear_errors_in_both_modes(which: str, error: Any, words: str, mode: str) -> None:
    with pytest.raises(error) as info:
        nki.profile(bad, target="trn2", mode=mode)(which)  # type: ignore[arg-type]
    assert words in str(info.value) and "test_surface_cumulative.py" in str(info.value)
