"""nisa.register_alloc / register_move / register_load / register_store and VirtualRegister: data-dependent loop
trip counts and while-conditions from registers in functional runs (checked against plain Python loops over
the same random data), the documented timing-mode rule, register_store round trips, and the rules as errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import ShapeMismatchError, UsageError
from trnsim.isa import Opcode


@nki.jit
def count_loop(x, trips):
    """Adds 1 to every element once per iteration of a loop whose trip count is read from `trips`."""
    t = nl.load(x)
    c = nl.load(trips)
    reg = nisa.register_alloc()
    nisa.register_load(reg, c)
    for _ in nl.dynamic_range(reg):
        nisa.tensor_scalar(t, t, nl.add, 1.0)
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nl.store(out, t)
    return out


def test_a_loaded_register_is_a_data_dependent_trip_count(rng: np.random.Generator) -> None:
    x = rng.standard_normal((16, 32)).astype(np.float32)
    n = int(rng.integers(0, 12))
    got = nki.simulate(count_loop)(x, np.array([[n]], np.int32))
    want = x.copy()
    for _ in range(n):
        want = want + np.float32(1.0)
    np.testing.assert_array_equal(got, want)


@nki.jit
def halve_while_positive(v):
    """while reg: v = v - 1 (the register reloaded from v each time), counting iterations in `count`."""
    cur = nl.load(v)
    count = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
    nisa.memset(count, 0)
    reg = nisa.register_alloc(cur)
    while reg:
        nisa.tensor_scalar(cur, cur, nl.subtract, 1)
        nisa.tensor_scalar(count, count, nl.add, 1)
        nisa.register_load(reg, cur)
    out = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.shared_hbm)
    nl.store(out, count)
    return out


def test_while_register_runs_until_the_loaded_value_is_zero(rng: np.random.Generator) -> None:
    n = int(rng.integers(0, 20))
    assert int(nki.simulate(halve_while_positive)(np.array([[n]], np.int32))[0, 0]) == n


@nki.jit
def move_and_store(v, k):
    a = nisa.register_alloc(k)
    b = nisa.register_alloc()
    nisa.register_move(b, a)
    c = nisa.register_alloc()
    nisa.register_load(c, nl.load(v))
    outs = nl.ndarray((3, 1, 1), dtype=nl.int32, buffer=nl.sbuf)
    nisa.register_store(outs[0], a)
    nisa.register_store(outs[1], b)
    nisa.register_store(outs[2], c)
    total = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
    nisa.memset(total, 0)
    nl.fori_loop(0, b, lambda i: nisa.tensor_scalar(total, total, nl.add, 2))
    out = nl.ndarray((4, 1, 1), dtype=nl.int32, buffer=nl.shared_hbm)
    nl.store(out[0:3], outs)
    nl.store(out[3], total)
    return out


def test_register_move_store_and_fori_loop(rng: np.random.Generator) -> None:
    k, v = int(rng.integers(0, 50)), int(rng.integers(-(2**31), 2**31))
    got = nki.simulate(move_and_store)(np.array([[v]], np.int32), k)
    np.testing.assert_array_equal(got.reshape(-1), [k, k, v, 2 * k])


def test_timing_mode_runs_int_registers_and_refuses_loaded_ones() -> None:
    spec = nki.TensorSpec((1, 1), "int32")
    prof = nki.profile(move_and_store, target="trn2", mode="timing")(spec, 3)
    ops = [i.opcode for i in prof.instructions]
    assert ops.count(Opcode.REGISTER_LOAD) == 1 and ops.count(Opcode.REGISTER_STORE) == 3
    assert ops.count(Opcode.TENSOR_SCALAR) == 3  # the fori_loop's trip count came from an int register
    with pytest.raises(UsageError, match="no value in timing mode") as info:
        nki.profile(count_loop, target="trn2", mode="timing")(nki.TensorSpec((16, 32), "float32"), spec)
    assert "test_surface_registers.py" in str(info.value)


@nki.jit
def bad(which):
    t = nl.ndarray((1, 2), dtype=nl.int32, buffer=nl.sbuf)
    nisa.memset(t, 1)
    reg = nisa.register_alloc(1)
    if which == "load-two":
        nisa.register_load(reg, t)
    elif which == "load-psum":
        p = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.psum)
        nisa.register_load(reg, p)
    elif which == "store-two":
        nisa.register_store(nl.ndarray((1, 2), dtype=nl.int32, buffer=nl.sbuf), reg)
    elif which == "move-float":
        nisa.register_move(reg, 1.5)
    elif which == "move-into-tile":
        nisa.register_move(t, 1)
    elif which == "too-wide":
        nisa.register_alloc(2**40)
    elif which == "frozen":
        nisa.register_move(nisa.VirtualRegister(3, frozen=True), 4)
    elif which == "unset":
        for _ in nl.dynamic_range(nisa.register_alloc()):
            pass
    out = nl.ndarray((1, 1), dtype=nl.float32, buffer=nl.shared_hbm)
    return out


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("load-two", ShapeMismatchError, "exactly one element"),
        ("load-psum", UsageError, "PSUM"),
        ("store-two", ShapeMismatchError, "exactly one element"),
        ("move-float", UsageError, "must be an int or a VirtualRegister"),
        ("move-into-tile", UsageError, "must be a register from nisa.register_alloc()"),
        ("too-wide", UsageError, "does not fit a 32-bit register"),
        ("frozen", UsageError, "frozen"),
    ],
)
@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_register_rules_are_clear_errors_in_both_modes(which: str, error: Any, words: str, mode: str) -> None:
    with pytest.raises(error) as info:
        nki.profile(bad, target="trn2", mode=mode)(which)  # type: ignore[arg-type]
    assert words in str(info.value) and "test_surface_registers.py" in str(info.value)


def test_an_unset_register_as_a_loop_bound_is_an_error() -> None:
    with pytest.raises(UsageError, match="never set"):
        nki.simulate(bad)("unset")


@nki.jit
def hbm_round_trip(v):
    reg = nisa.register_alloc()
    nisa.register_load(reg, v)  # straight from the HBM argument
    out = nl.ndarray((1,), dtype=nl.int32, buffer=nl.shared_hbm)
    nisa.register_store(out, reg)
    return out


def test_registers_load_from_and_store_to_hbm(rng: np.random.Generator) -> None:
    v = int(rng.integers(-(2**31), 2**31))
    assert int(nki.simulate(hbm_round_trip)(np.array([v], np.int32))[0]) == v


def test_a_while_register_that_never_changes_is_an_error_not_a_hang() -> None:
    @nki.jit
    def forever():
        reg = nisa.register_alloc(1)
        while reg:
            pass
        out = nl.ndarray((1, 1), dtype=nl.float32, buffer=nl.shared_hbm)
        return out

    with pytest.raises(UsageError, match="stayed non-zero for 1048576 iterations"):
        nki.simulate(forever)()


@nki.jit
def countdown_while_loop(v):
    cur = nl.load(v)
    count = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
    nisa.memset(count, 0)
    reg = nisa.register_alloc(cur)

    def body(r):
        nisa.tensor_scalar(cur, cur, nl.subtract, 1)
        nisa.tensor_scalar(count, count, nl.add, 1)
        nisa.register_load(r, cur)
        return r

    nl.while_loop(reg, body)
    out = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.shared_hbm)
    nl.store(out, count)
    return out


def test_nl_while_loop_on_a_register(rng: np.random.Generator) -> None:
    n = int(rng.integers(0, 20))
    assert int(nki.simulate(countdown_while_loop)(np.array([[n]], np.int32))[0, 0]) == n
