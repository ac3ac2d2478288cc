"""A failure inside the simulator surfaces as InternalError naming the kernel line; user bugs pass through."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.language as nl
from trnsim.errors import InternalError
from trnsim.isa import semantics


@nki.jit
def exp_kernel(x):
    t = nl.load(x)
    y = nl.exp(t)  # LINE
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    nl.store(out, y)
    return out


def test_simulator_failure_becomes_internal_error_at_the_kernel_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # Break a helper the simulator calls, so the failure happens inside trnsim's own code.
    monkeypatch.setattr(semantics, "as_2d", None)
    with pytest.raises(InternalError) as err:
        nki.simulate(exp_kernel)(np.ones((4, 4), dtype=np.float32))
    line = next(i for i, text in enumerate(inspect.getsource(exp_kernel.fn).splitlines()) if "# LINE" in text)
    assert err.value.location == f"{__file__}:{exp_kernel.fn.__code__.co_firstlineno + line}"
    assert "TypeError" in str(err.value) and "semantics.py" in str(err.value) and err.value.rule == "internal"


@nki.jit
def user_bug(x):
    t = nl.load(x)
    return t.shape[0] / 0


def test_exceptions_from_the_kernels_own_code_are_not_wrapped() -> None:
    with pytest.raises(ZeroDivisionError):
        nki.simulate(user_bug)(np.ones((4, 4), dtype=np.float32))
