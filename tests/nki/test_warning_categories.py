"""Profile warnings are raised under their own class: a compiler-spill note is a CompilerSpillWarning, so a filter
that makes UninitialisedMemoryWarning an error (how users and nki-library's tests catch reads of unwritten
memory) lets a kernel that spills run to its result; a real uninitialised read still raises. Values vs numpy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import CompilerSpillWarning, UninitialisedMemoryWarning, WarningText, warning_category
from trnsim.sim.memory import SPILL_ENV

TARGET = "trn2"
SPEC = nki.get_target_spec(TARGET)
P = SPEC.core.sbuf.partitions
F = 7168  # fp32 per partition: 28 KiB a tile
N = SPEC.core.sbuf.partition_bytes // (F * 4) + 2  # two more tiles live than SBUF holds


@nki.jit
def hoard(x):
    """out[i] = x[i] * a + b with every tile loaded before any is computed on (last first): it must spill."""
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    tiles = []
    for i in range(x.shape[0]):
        t = nl.ndarray((P, F), dtype=nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[i])
        tiles.append(t)
    for i in reversed(range(x.shape[0])):
        nisa.tensor_scalar(dst=tiles[i], data=tiles[i], op0=nl.multiply, operand0=3.0, op1=nl.add, operand1=-1.0)
        nisa.dma_copy(dst=out[i], src=tiles[i])
    return out


@nki.jit
def half_written(x):
    """Loads only the first half of the partitions, then stores the whole tile: the rest is never written."""
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t[: x.shape[0] // 2], src=x[: x.shape[0] // 2])
    nisa.dma_copy(dst=out, src=t)
    return out


def test_a_spilling_kernel_runs_under_an_uninitialised_read_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SPILL_ENV, "compiler")
    x = np.random.default_rng().standard_normal((N, P, F)).astype(np.float32)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.simplefilter("error", UninitialisedMemoryWarning)
        got = nki.simulate(hoard, target=TARGET)(x)
    np.testing.assert_allclose(got, x * np.float32(3.0) + np.float32(-1.0), rtol=1e-6, atol=1e-6)
    spills = [w for w in seen if issubclass(w.category, CompilerSpillWarning)]
    assert spills and f"{SPILL_ENV}=compiler" in str(spills[0].message)
    assert not any(issubclass(w.category, UninitialisedMemoryWarning) for w in seen)


def test_an_uninitialised_read_still_raises() -> None:
    rng = np.random.default_rng()
    x = rng.standard_normal((2 * int(rng.integers(1, 33)), int(rng.integers(1, 65)))).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UninitialisedMemoryWarning)
        with pytest.raises(UninitialisedMemoryWarning, match="uninitialised memory"):
            nki.simulate(half_written, target=TARGET)(x)


def test_warning_text_is_its_string_with_a_class() -> None:
    text = WarningText("core 0: note", CompilerSpillWarning)
    assert text == "core 0: note" and isinstance(text, str) and {text: 1}["core 0: note"] == 1
    assert warning_category(text) is CompilerSpillWarning
    assert warning_category("a plain message") is UninitialisedMemoryWarning
