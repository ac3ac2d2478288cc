"""Fit the GPU model's efficiency curves on the measured H100 data and write fitted/h100.toml.

Run: python -m trnsim.gpu.fit [--data DIR] [--out FILE] [--dry-run]

Least squares on log(predicted / measured) (relative errors, so 20 us and 20 ms rows weigh alike), in two
stages: the streaming curve (bandwidth efficiency, launch, floor) on the copy/add rows, then the GEMM
curves on the GEMM rows with the streaming curve held. Tile shapes and the split-K limit are inputs (see
TILE_SHAPES); everything else is fitted. Efficiencies are fitted through a logistic map so they stay in (0, 1).
"""

from __future__ import annotations

import argparse
import copy
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tomlkit
from numpy.typing import NDArray
from scipy.optimize import least_squares

from trnsim.gpu.measured import (
    BANDWIDTH_FILE,
    DATA_DIR,
    GEMM_FILE,
    BandwidthRows,
    GemmRows,
    device_name,
    file_digest,
    load_bandwidth,
    load_gemm,
)
from trnsim.gpu.model import GpuModel
from trnsim.gpu.presets import FITTED_DIR, load_gpu_preset
from trnsim.gpu.spec import FittedCurves, GpuSpec

Vector = NDArray[np.float64]

# Inputs to the fit, not fitted. Assumption: output tiles typical of cuBLAS/CUTLASS kernels on Hopper
# (tensor cores: 128x256, 128x128, 64x128; CUDA-core SGEMM: 128x128, 64x64, 32x64); split-K up to 16 ways.
TILE_SHAPES = {"tensor": [(128, 256), (128, 128), (64, 128)], "simt": [(128, 128), (64, 64), (32, 64)]}
MAX_SPLIT_K = 16
# Beyond p = 32 the smooth max is a plain max to within 2%; the bound keeps the fitted file finite.
MAX_EXPONENT = 32.0
FIT_METHOD = "Levenberg-Marquardt on log(pred/measured), streaming rows then GEMM rows (trnsim.gpu.fit)"


def _logistic(z: float) -> float:
    return float(1.0 / (1.0 + np.exp(-z)))


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


@dataclass(frozen=True)
class Param:
    """One fitted number: where it goes in the curves dict, how z maps to it, and a starting value."""

    path: tuple[str | int, ...]
    kind: str  # "fraction" (0,1), "positive", "exponent" [1, MAX_EXPONENT]
    start: float

    def value(self, z: float) -> float:
        if self.kind == "fraction":
            return _logistic(z)
        if self.kind == "exponent":
            return 1.0 + (MAX_EXPONENT - 1.0) * _logistic(z)
        return float(np.exp(z))

    def z0(self) -> float:
        if self.kind == "fraction":
            return _logit(self.start)
        if self.kind == "exponent":
            return _logit((self.start - 1.0) / (MAX_EXPONENT - 1.0))
        return float(np.log(self.start))


STREAM_PARAMS = [
    Param(("memory", "bandwidth_efficiency"), "fraction", 0.85),
    Param(("memory", "launch_s"), "positive", 8e-6),
    Param(("memory", "floor_s"), "positive", 2e-5),
]


def _class_params(cls: str) -> list[Param]:
    effs = [Param(("gemm", cls, "tile_efficiency", i), "fraction", 0.7) for i in range(len(TILE_SHAPES[cls]))]
    return [
        *effs,
        Param(("gemm", cls, "k_overhead"), "positive", 32.0),
        Param(("gemm", cls, "stream_efficiency"), "fraction", 0.8),
        Param(("gemm", cls, "gemv_stream_efficiency"), "fraction", 0.8),
    ]


GEMM_PARAMS = [
    Param(("gemm", "overhead_s"), "positive", 4e-6),
    Param(("gemm", "combine_exponent"), "exponent", 4.0),
    *_class_params("tensor"),
    *_class_params("simt"),
]


def _skeleton(record: dict[str, Any]) -> dict[str, Any]:
    def tile_class(cls: str) -> dict[str, Any]:
        return {
            "tiles": [list(t) for t in TILE_SHAPES[cls]],
            "tile_efficiency": [0.7] * len(TILE_SHAPES[cls]),
            "k_overhead": 32.0,
            "stream_efficiency": 0.8,
            "gemv_stream_efficiency": 0.8,
        }

    return {
        "fit": record,
        "memory": {"bandwidth_efficiency": 0.85, "launch_s": 8e-6, "floor_s": 2e-5},
        "gemm": {
            "overhead_s": 4e-6,
            "combine_exponent": 4.0,
            "max_split_k": MAX_SPLIT_K,
            "tensor": tile_class("tensor"),
            "simt": tile_class("simt"),
        },
    }


def _apply(base: dict[str, Any], params: list[Param], z: Vector) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for p, zi in zip(params, z, strict=True):
        node: Any = out
        for key in p.path[:-1]:
            node = node[key]
        node[p.path[-1]] = p.value(float(zi))
    return out


def predict_gemm(model: GpuModel, rows: GemmRows) -> Vector:
    pred = np.empty(rows.seconds.shape)
    for dtype in np.unique(rows.dtype):
        sel = rows.dtype == dtype
        pred[sel] = model.gemm_times_s(rows.m[sel], rows.n[sel], rows.k[sel], str(dtype))
    return pred


def predict_bandwidth(model: GpuModel, rows: BandwidthRows) -> Vector:
    return model.memory_times_s(rows.bytes_moved)


def _stage(
    spec: GpuSpec, base: dict[str, Any], params: list[Param], residual: Callable[[GpuModel], Vector]
) -> dict[str, Any]:
    def f(z: Vector) -> Vector:
        curves = FittedCurves.model_validate(_apply(base, params, z))
        return residual(GpuModel(spec, curves))

    # scipy's Levenberg-Marquardt (MINPACK) with a finite-difference Jacobian: the model has kinks (wave
    # quantisation, the launch floor), so no analytic Jacobian; bounds are mapped away by Param.value, which
    # leaves an unconstrained problem, as method="lm" requires.
    solution = least_squares(f, np.array([p.z0() for p in params]), method="lm")
    return _apply(base, params, solution.x)


def relative_errors(pred: Vector, measured: Vector) -> Vector:
    return np.asarray(np.abs(pred / measured - 1.0))


def fit_rows(gemm: GemmRows, bandwidth: BandwidthRows, spec: GpuSpec, record: dict[str, Any]) -> FittedCurves:
    """Fit the curves on the given rows (all of them, or a training subset for cross-validation)."""
    base = _skeleton(record)
    base = _stage(spec, base, STREAM_PARAMS, lambda m: np.log(predict_bandwidth(m, bandwidth) / bandwidth.seconds))
    base = _stage(spec, base, GEMM_PARAMS, lambda m: np.log(predict_gemm(m, gemm) / gemm.seconds))
    model = GpuModel(spec, FittedCurves.model_validate(base))
    g_err = relative_errors(predict_gemm(model, gemm), gemm.seconds)
    errors = {f"gemm_{d}": float(np.median(g_err[gemm.dtype == d])) for d in np.unique(gemm.dtype)}
    errors["bandwidth"] = float(np.median(relative_errors(predict_bandwidth(model, bandwidth), bandwidth.seconds)))
    base["fit"]["median_rel_error"] = {k: round(v, 4) for k, v in errors.items()}
    return FittedCurves.model_validate(base)


def fit_curves(data_dir: Path = DATA_DIR, spec: GpuSpec | None = None) -> FittedCurves:
    """Fit the curves on data_dir's h100_gemm.json and h100_bandwidth.json for the given spec (H100)."""
    record = {
        "date": datetime.date.today().isoformat(),
        "method": FIT_METHOD,
        "device": device_name(data_dir),
        "data": [f"{name} sha256:{file_digest(data_dir / name)}" for name in (GEMM_FILE, BANDWIDTH_FILE)],
        "median_rel_error": {},
    }
    return fit_rows(load_gemm(data_dir), load_bandwidth(data_dir), spec or load_gpu_preset("h100"), record)


_COMMENTS = {
    "bandwidth_efficiency": "large-transfer asymptote of streaming kernels, fraction of HBM peak",
    "launch_s": "fixed time of one kernel in a stream: launch, ramp-up, tail",
    "floor_s": "shortest time a lone CUDA-event-timed launch shows (the data's small-size plateau)",
    "overhead_s": "GEMM fixed time beyond launch_s (cuBLAS prologue/epilogue, split-K or GEMV reduction)",
    "combine_exponent": "p in (t_compute^p + t_memory^p)^(1/p)",
    "max_split_k": "input, not fitted: split-K factors tried when tiles leave SMs idle",
    "tiles": "input, not fitted (assumption: typical cuBLAS/CUTLASS output tiles)",
    "tile_efficiency": "per tile: FLOP rate of a busy SM / its share of peak",
    "k_overhead": "per-tile fixed cost, in K elements",
    "stream_efficiency": "operand streaming of tiled GEMMs, fraction of HBM peak",
    "gemv_stream_efficiency": "matrix-vector kernels (M or N = 1), fraction of HBM peak",
}


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.5g}")
    if isinstance(v, list):
        return [_round(x) for x in v]
    return v


def curves_to_toml(curves: FittedCurves) -> str:
    """The fitted-curves file, with a comment on every number saying what it is."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment("Efficiency curves of the GPU model, fitted by `python -m trnsim.gpu.fit` (gpu/fit.py)."))
    doc.add(tomlkit.comment("Do not edit by hand: rerun the fit. Fit date, data files and their SHA-256 are in [fit]."))
    data = curves.model_dump(mode="json")

    def fill(table: Any, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(value, dict):
                sub = tomlkit.table()
                fill(sub, value)
                table.add(key, sub)
                continue
            table.add(key, _round(value))
            if key in _COMMENTS:
                table[key].comment(_COMMENTS[key])

    fill(doc, data)
    return tomlkit.dumps(doc)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m trnsim.gpu.fit", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help=f"folder holding {GEMM_FILE}, {BANDWIDTH_FILE}")
    parser.add_argument("--out", type=Path, default=FITTED_DIR / "h100.toml", help="fitted-curves file to write")
    parser.add_argument("--dry-run", action="store_true", help="print the file instead of writing it")
    args = parser.parse_args(argv)
    curves = fit_curves(args.data)
    text = curves_to_toml(curves)
    if args.dry_run:
        print(text)
    else:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    for name, err in curves.fit.median_rel_error.items():
        print(f"median relative error {name}: {100 * err:.1f}%")


if __name__ == "__main__":
    main()
