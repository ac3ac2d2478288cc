"""The GPU model's efficiency curves as array functions (numpy), shared by the model and the fit.

Tiled GEMM compute time: the output is cut into tiles of a candidate shape; each tile runs on one SM and
takes `2 * tm * tn * (k + k_overhead)` FLOPs at the SM's share of peak times the tile's efficiency. Tiles run
in waves of `sm_count`, so a last, partly filled wave costs a full one (wave quantisation) and padded edge
tiles cost full tiles. When the tiles leave SMs idle the K loop may be split `s` ways (split-K), paying to
write and re-read `s` fp32 partial outputs. The kernel library is taken to pick the fastest candidate, like
cuBLAS's heuristics. Each candidate's time grows with M, N, K and batch, so the minimum does too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def smooth_max(a: Any, b: Any, p: float) -> Array:
    """(a^p + b^p)^(1/p): at least max(a, b), at most 2^(1/p) * max(a, b); p large -> max."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    top = np.maximum(np.maximum(a, b), 1e-300)
    return np.asarray(top * ((a / top) ** p + (b / top) ** p) ** (1.0 / p))


def tiled_gemm_compute_s(
    m: Any,
    n: Any,
    k: Any,
    batch: Any,
    *,
    tiles: list[tuple[int, int]],
    tile_efficiency: list[float],
    k_overhead: float,
    peak_flops: float,
    sm_count: int,
    max_split_k: int,
    partial_bytes_per_s: float,
) -> Array:
    """Compute-side time of a batch of (m x k) @ (k x n) GEMMs for each element of the broadcast inputs."""
    shape = np.broadcast(m, n, k, batch).shape
    # Axes: [problem, tile candidate, split factor].
    mm, nn, kk, bb = (np.asarray(v, dtype=np.float64).reshape(-1, 1, 1) for v in np.broadcast_arrays(m, n, k, batch))
    tm = np.array([t[0] for t in tiles], dtype=np.float64).reshape(1, -1, 1)
    tn = np.array([t[1] for t in tiles], dtype=np.float64).reshape(1, -1, 1)
    eff = np.asarray(tile_efficiency, dtype=np.float64).reshape(1, -1, 1)
    split = np.arange(1, max_split_k + 1, dtype=np.float64).reshape(1, 1, -1)

    n_tiles = bb * np.ceil(mm / tm) * np.ceil(nn / tn)
    # Split K only to fill SMs that would otherwise idle; that choice depends on M, N, batch, never on K.
    allowed = (split == 1) | (n_tiles * split <= sm_count)
    waves = np.ceil(n_tiles * split / sm_count)
    k_per_unit = np.ceil(kk / split)
    per_sm_flops = peak_flops / sm_count
    t = waves * 2.0 * tm * tn * (k_per_unit + k_overhead) / (per_sm_flops * eff)
    # Split-K partial sums: s fp32 copies of the output written, then read back by the reduction.
    t = t + np.where(split > 1, bb * mm * nn * 4.0 * 2.0 * split / partial_bytes_per_s, 0.0)
    t = np.where(allowed, t, np.inf)
    return np.asarray(t.min(axis=(1, 2)).reshape(shape))


def gemm_flops(m: Any, n: Any, k: Any, batch: Any) -> Array:
    return np.asarray(2.0 * np.asarray(batch, np.float64) * m * n * np.asarray(k, np.float64))


def gemm_bytes(m: Any, n: Any, k: Any, batch: Any, elt: float) -> Array:
    """Each operand read once and the result written once (the measured data's convention)."""
    m, n, k = (np.asarray(v, dtype=np.float64) for v in (m, n, k))
    return np.asarray(np.asarray(batch, np.float64) * (m * k + k * n + m * n) * elt)


def causal_pairs(q_len: int, kv_len: int, causal: bool) -> int:
    """(query, key) pairs attention computes; causal queries are the last q_len positions of kv_len."""
    if not causal:
        return q_len * kv_len
    return q_len * (kv_len - q_len) + q_len * (q_len + 1) // 2
