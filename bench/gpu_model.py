"""How well the GPU model matches the measured H100 data: median and p90 relative error per dataset and dtype.

Run: .venv/bin/python bench/gpu_model.py [--rows] [--cv] [--json]
Uses the stored fit (src/trnsim/gpu/fitted/h100.toml) on every row of the packaged copies of
shared/data/gpu/h100_gemm.json and h100_bandwidth.json. --rows lists each row's measured and predicted time.
--cv adds 5-fold cross-validation of the GEMM fit: refit on 4/5 of the GEMM rows (shuffled with a fixed seed),
predict the held-out fifth; this shows how the curves do on shapes they were not fitted on.
Relative error = |predicted / measured - 1|.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from trnsim.gpu import GpuModel
from trnsim.gpu.fit import fit_rows, predict_bandwidth, predict_gemm, relative_errors
from trnsim.gpu.measured import GemmRows, load_bandwidth, load_gemm


def _summary(err: np.ndarray) -> dict[str, float]:
    return {
        "rows": int(err.size),
        "median": float(np.median(err)),
        "p90": float(np.percentile(err, 90)),
        "max": float(err.max()),
    }


def _subset(rows: GemmRows, sel: np.ndarray) -> GemmRows:
    return GemmRows(rows.dtype[sel], rows.m[sel], rows.n[sel], rows.k[sel], rows.seconds[sel])


def cross_validated_errors(folds: int = 5, seed: int = 0) -> np.ndarray:
    """Relative error of each GEMM row predicted by a fit that never saw it."""
    h100 = GpuModel.from_preset("h100")
    gemm, bw = load_gemm(), load_bandwidth()
    fold_of = np.random.default_rng(seed).permutation(gemm.seconds.size) % folds
    err = np.empty(gemm.seconds.size)
    for f in range(folds):
        held = fold_of == f
        curves = fit_rows(_subset(gemm, ~held), bw, h100.spec, h100.curves.fit.model_dump())
        model = GpuModel(h100.spec, curves)
        err[held] = relative_errors(predict_gemm(model, _subset(gemm, held)), gemm.seconds[held])
    return err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", action="store_true", help="print every row")
    parser.add_argument("--cv", action="store_true", help="add 5-fold cross-validation of the GEMM fit")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()

    h100 = GpuModel.from_preset("h100")
    gemm, bw = load_gemm(), load_bandwidth()
    g_pred, b_pred = predict_gemm(h100, gemm), predict_bandwidth(h100, bw)
    g_err, b_err = relative_errors(g_pred, gemm.seconds), relative_errors(b_pred, bw.seconds)

    table: dict[str, dict[str, float]] = {}
    for dtype in np.unique(gemm.dtype):
        sel = gemm.dtype == dtype
        table[f"gemm {dtype}"] = _summary(g_err[sel])
        skinny = sel & (gemm.m <= 128)
        table[f"gemm {dtype}, M <= 128"] = _summary(g_err[skinny])
        table[f"gemm {dtype}, M > 128"] = _summary(g_err[sel & ~skinny])
    table["gemm all"] = _summary(g_err)
    for op in np.unique(bw.op):
        table[f"bandwidth {op}"] = _summary(b_err[bw.op == op])
    table["bandwidth all"] = _summary(b_err)
    if args.cv:
        cv = cross_validated_errors()
        for dtype in np.unique(gemm.dtype):
            table[f"gemm {dtype} (5-fold CV)"] = _summary(cv[gemm.dtype == dtype])

    if args.json:
        print(json.dumps({"fit": h100.curves.fit.model_dump(), "errors": table}, indent=2))
        return
    fit = h100.curves.fit
    print(f"GPU model vs measured data ({fit.device}); fit of {fit.date}")
    print(f"{'dataset':<28} {'rows':>5} {'median':>8} {'p90':>8} {'max':>8}")
    for name, s in table.items():
        print(f"{name:<28} {s['rows']:>5} {100 * s['median']:>7.1f}% {100 * s['p90']:>7.1f}% {100 * s['max']:>7.1f}%")
    if args.rows:
        print(f"\n{'dtype':<9} {'M':>6} {'N':>6} {'K':>6} {'measured us':>12} {'model us':>10} {'ratio':>6}")
        for i in range(gemm.seconds.size):
            print(
                f"{gemm.dtype[i]:<9} {gemm.m[i]:>6} {gemm.n[i]:>6} {gemm.k[i]:>6} {1e6 * gemm.seconds[i]:>12.1f} "
                f"{1e6 * g_pred[i]:>10.1f} {g_pred[i] / gemm.seconds[i]:>6.2f}"
            )
        print(f"\n{'op':<11} {'MiB':>6} {'measured us':>12} {'model us':>10} {'ratio':>6}")
        for i in range(bw.seconds.size):
            print(
                f"{bw.op[i]:<11} {bw.bytes_moved[i] / 2**21:>6.0f} {1e6 * bw.seconds[i]:>12.1f} "
                f"{1e6 * b_pred[i]:>10.1f} {b_pred[i] / bw.seconds[i]:>6.2f}"
            )


if __name__ == "__main__":
    main()
