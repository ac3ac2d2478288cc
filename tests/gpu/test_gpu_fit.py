"""The fitted GPU model against every row of the measured H100 data, and the fit reproducing itself."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from trnsim.gpu import GpuModel
from trnsim.gpu.fit import curves_to_toml, fit_curves, predict_bandwidth, predict_gemm, relative_errors
from trnsim.gpu.measured import load_bandwidth, load_gemm
from trnsim.gpu.presets import load_fitted
from trnsim.gpu.spec import FittedCurves
from trnsim.hw.spec_files import read_spec_file


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_gemm_median_error_within_ten_percent(h100: GpuModel, dtype: str) -> None:
    rows = load_gemm()
    sel = rows.dtype == dtype
    err = relative_errors(predict_gemm(h100, rows)[sel], rows.seconds[sel])
    assert sel.sum() >= 50  # every row of the dtype is checked, none filtered out
    assert np.median(err) <= 0.10, f"{dtype}: median {np.median(err):.3f}"
    assert np.percentile(err, 90) <= 0.25, f"{dtype}: p90 {np.percentile(err, 90):.3f}"


def test_bandwidth_median_error_within_ten_percent(h100: GpuModel) -> None:
    rows = load_bandwidth()
    err = relative_errors(predict_bandwidth(h100, rows), rows.seconds)
    assert len(err) == 14
    assert np.median(err) <= 0.10
    assert err.max() <= 0.10


def test_bandwidth_curve_rises_to_its_asymptote(h100: GpuModel) -> None:
    """Small transfers are launch-bound; large ones approach the fitted fraction of the HBM peak."""
    eff = [h100.bandwidth_efficiency(2.0**e) for e in range(16, 36)]
    assert all(b >= a for a, b in itertools.pairwise(eff))
    assert eff[0] < 0.01
    assert eff[-1] == pytest.approx(h100.curves.memory.bandwidth_efficiency, rel=0.02)


def test_skinny_gemms_are_bandwidth_bound(h100: GpuModel) -> None:
    """M = 1..32 decode-shaped GEMMs: time tracks the weight bytes, not the FLOPs."""
    k, n = 8192, 28672
    times = [h100.gemm_time_s(m, n, k) for m in (1, 8, 32)]
    weight_s = k * n * 2 / h100.hbm_bytes_per_s
    assert max(times) / min(times) < 1.15
    assert all(t > weight_s for t in times)


def test_refit_reproduces_the_stored_curves() -> None:
    stored = load_fitted("h100")
    refit = fit_curves()
    a = stored.model_dump()
    b = refit.model_dump()
    a["fit"].pop("date")
    b["fit"].pop("date")
    np.testing.assert_allclose(_numbers(a), _numbers(b), rtol=2e-3, atol=1e-9)
    assert _strings(a) == _strings(b)


def test_fitted_file_round_trips(tmp_path) -> None:
    stored = load_fitted("h100")
    path = tmp_path / "fit.toml"
    path.write_text(curves_to_toml(stored))
    again = FittedCurves.model_validate(read_spec_file(path, "GPU spec"))
    np.testing.assert_allclose(_numbers(again.model_dump()), _numbers(stored.model_dump()), rtol=1e-4)


def _numbers(d: object) -> list[float]:
    if isinstance(d, dict):
        return [x for k in sorted(d) for x in _numbers(d[k])]
    if isinstance(d, list | tuple):
        return [x for v in d for x in _numbers(v)]
    return [float(d)] if isinstance(d, int | float) else []


def _strings(d: object) -> list[str]:
    if isinstance(d, dict):
        return [x for k in sorted(d) for x in _strings(d[k])]
    if isinstance(d, list | tuple):
        return [x for v in d for x in _strings(v)]
    return [d] if isinstance(d, str) else []
