"""The acceptance harness's CPU-simulator hook (bench/nki_acceptance_shims/nki_cpu_simulator) warns at LNC=2.

nki-library's simulation mode calls `nki.cpu_simulate(kernel)[lnc](**inputs)`. For LNC=1 the hook is
`trnsim.nki.simulate`, which raises the run's warnings as UninitialisedMemoryWarning; the LNC=2 path runs both
programs through `run_ranks` and used to return the outputs only, so a kernel that read never-written SBUF
gave NaN results with no warning even under `-W error` (moe_tkg's padded-I MX path, BENCHMARKS.md).
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import UninitialisedMemoryWarning

SHIM = Path(__file__).resolve().parents[2] / "bench" / "nki_acceptance_shims" / "nki_cpu_simulator" / "__init__.py"
ROWS, COLS = 64, 32  # each of the two programs copies ROWS rows through one SBUF tile


def _shim() -> ModuleType:
    """The hook module, loaded from its file without putting the other shims (torch_xla, boto3, ...) on sys.path."""
    name = "nki_cpu_simulator"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SHIM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _copy_kernel(rows_loaded: int) -> Any:
    """Per program: rows [pid*ROWS, pid*ROWS + rows_loaded) of `a` into an SBUF tile, the whole tile out."""

    @nki.jit
    def copy_through_sbuf(a: Any) -> Any:
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        pid = nl.program_id(0)
        tile = nl.ndarray((ROWS, COLS), dtype=a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=tile[0:rows_loaded, :], src=a[pid * ROWS : pid * ROWS + rows_loaded, :])
        nisa.dma_copy(dst=out[pid * ROWS : (pid + 1) * ROWS, :], src=tile)
        return out

    return copy_through_sbuf


def _run(rows_loaded: int, a: np.ndarray) -> tuple[np.ndarray, list[str]]:
    sim = _shim().nki.cpu_simulate(_copy_kernel(rows_loaded))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = sim[2](a=a)
    return np.asarray(out), [str(w.message) for w in caught if issubclass(w.category, UninitialisedMemoryWarning)]


def test_lnc2_clean_kernel_matches_numpy_without_warning() -> None:
    a = np.random.default_rng().standard_normal((2 * ROWS, COLS)).astype(np.float32)
    out, warned = _run(ROWS, a)
    np.testing.assert_array_equal(out, a)
    assert warned == []


def test_lnc2_read_of_unwritten_sbuf_warns() -> None:
    loaded = int(np.random.default_rng().integers(8, ROWS - 8))
    a = np.random.default_rng().standard_normal((2 * ROWS, COLS)).astype(np.float32)
    out, warned = _run(loaded, a)
    for pid in range(2):  # the loaded rows arrive; the rest is trnsim's poison for never-written memory
        np.testing.assert_array_equal(out[pid * ROWS : pid * ROWS + loaded], a[pid * ROWS : pid * ROWS + loaded])
        assert np.isnan(out[pid * ROWS + loaded : (pid + 1) * ROWS]).all()
    assert warned, "the LNC=2 hook returned NaN results without an UninitialisedMemoryWarning"
    assert any("read of uninitialised memory" in m and "test_cpu_simulate_warnings_h1.py" in m for m in warned)


def test_lnc2_warning_is_an_error_under_w_error() -> None:
    a = np.random.default_rng().standard_normal((2 * ROWS, COLS)).astype(np.float32)
    sim = _shim().nki.cpu_simulate(_copy_kernel(ROWS // 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UninitialisedMemoryWarning)
        with pytest.raises(UninitialisedMemoryWarning, match="read of uninitialised memory"):
            sim[2](a=a)
