"""Step latencies from an expensive source (the compiler's estimate), computed on a grid and interpolated.

`StepLatencyGrid(fn, batches, new_tokens, contexts)` calls `fn(batch, new_tokens, context) -> seconds` once
per grid point (optionally in parallel, optionally cached on disk) and then answers `step_time_s` for any
point by interpolation, so a simulation of millions of steps calls the compiler only a few hundred times.

Interpolation is linear in each axis (trilinear) on the raw values. Space the grid points geometrically
(`geometric_axis`) to cover several decades with few points; linear interpolation between them is still
the right choice because step time is close to *multilinear* in (batch, new_tokens, context): weight
reads are constant, compute grows with new_tokens, KV reads with batch x context - and trilinear
interpolation reproduces any such function exactly. Outside the grid it extrapolates linearly from the
edge cell (no clamping) and warns once per axis, since a clamped step time would silently be too fast.
This is what scipy's `RegularGridInterpolator(method="linear", fill_value=None)` computes (the tests use it as
the reference); the lookup is written out because serving calls it once per simulated step and scipy's
per-point call costs ~75 us against ~3 us here.
"""

from __future__ import annotations

import math
import warnings
from bisect import bisect_right
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from itertools import pairwise
from os import PathLike
from typing import Literal

import numpy as np

from trnsim.serve.errors import ServeError
from trnsim.serve.step_grid_store import Point, StepLatencyStore

StepFn = Callable[[int, int, float], float]


def geometric_axis(low: float, high: float, points: int, integer: bool = True) -> list[float]:
    """`points` values from low to high spaced evenly on a log scale (rounded and deduplicated if integer)."""
    if not (0 < low < high) or points < 2:
        raise ServeError(f"geometric_axis needs 0 < low < high and points >= 2, got low={low}, high={high}, {points=}")
    raw = np.geomspace(low, high, points)
    if integer:
        return sorted({round(float(v)) for v in raw})
    return [float(v) for v in raw]


def _check_axis(name: str, values: Sequence[float], minimum: float) -> list[float]:
    axis = [float(v) for v in values]
    if len(axis) < 2:
        raise ServeError(f"StepLatencyGrid axis {name} needs at least 2 points to interpolate, got {axis}")
    if any(b <= a for a, b in pairwise(axis)):
        raise ServeError(f"StepLatencyGrid axis {name} must be strictly increasing, got {axis}")
    if axis[0] < minimum:
        raise ServeError(f"StepLatencyGrid axis {name} must start at >= {minimum}, got {axis[0]}")
    return axis


class StepLatencyGrid:
    """A StepCost backed by a table of `fn` values on a (batch x new_tokens x context) grid.

    cache_path: SQLite file to reuse values across runs (`default_cache_path()` is the user cache); `key`
    must then name what fn measures (model, hardware, tp, ...) so different tables never mix.
    parallel: evaluate missing points with a thread or process pool (`max_workers` each); fn must be
    picklable for "processes". `evaluated` counts the points fn computed (0 when all came from the cache).
    """

    def __init__(
        self,
        fn: StepFn,
        batches: Sequence[int],
        new_tokens: Sequence[int],
        contexts: Sequence[float],
        cache_path: str | PathLike[str] | None = None,
        key: str = "",
        parallel: Literal["threads", "processes"] | None = None,
        max_workers: int | None = None,
    ) -> None:
        self.batches = _check_axis("batches", batches, 1)
        self.new_tokens = _check_axis("new_tokens", new_tokens, 1)
        self.contexts = _check_axis("contexts", contexts, 0)
        if any(b != int(b) for b in self.batches) or any(n != int(n) for n in self.new_tokens):
            raise ServeError("StepLatencyGrid batches and new_tokens must be whole numbers")
        if cache_path is not None and not key:
            raise ServeError("StepLatencyGrid with a cache_path needs key=... naming model, hardware and tp")
        if parallel not in (None, "threads", "processes"):
            raise ServeError(f"parallel must be None, 'threads' or 'processes', got {parallel!r}")
        self.key = key
        points: list[Point] = [
            (int(b), int(n), c) for b in self.batches for n in self.new_tokens for c in self.contexts
        ]
        store = StepLatencyStore(cache_path) if cache_path is not None else None
        known = store.load(key) if store is not None else {}
        missing = [p for p in points if p not in known]
        computed = _evaluate(fn, missing, parallel, max_workers)
        for p, s in zip(missing, computed):
            if not (math.isfinite(s) and s >= 0):
                raise ServeError(f"step latency fn returned {s!r} at (batch, new_tokens, context) = {p}; need >= 0")
        if store is not None and missing:
            store.save(key, zip(missing, computed))
        known.update(zip(missing, computed))
        self.evaluated = len(missing)
        self._values = [known[p] for p in points]
        self._stride_b = len(self.new_tokens) * len(self.contexts)
        self._stride_n = len(self.contexts)
        self._warned: set[str] = set()

    @property
    def table(self) -> np.ndarray:
        """The grid values, shape (len(batches), len(new_tokens), len(contexts)), seconds."""
        return np.array(self._values).reshape(len(self.batches), len(self.new_tokens), len(self.contexts))

    def _cell(self, axis: list[float], x: float, name: str) -> tuple[int, float]:
        """Index of the cell's lower corner and the position inside it (<0 or >1 when extrapolating)."""
        i = bisect_right(axis, x) - 1
        if i < 0 or i > len(axis) - 2:
            if (x < axis[0] or x > axis[-1]) and name not in self._warned:
                self._warned.add(name)
                warnings.warn(
                    f"step latency grid extrapolates linearly: {name}={x:g} is outside the grid "
                    f"[{axis[0]:g}, {axis[-1]:g}]; widen the grid for accurate step times",
                    stacklevel=3,
                )
            i = 0 if i < 0 else len(axis) - 2
        lo = axis[i]
        return i, (x - lo) / (axis[i + 1] - lo)

    def step_time_s(self, batch: int, new_tokens: int, context: float) -> float:
        i, tb = self._cell(self.batches, batch, "batch")
        j, tn = self._cell(self.new_tokens, new_tokens, "new_tokens")
        k, tc = self._cell(self.contexts, context, "context")
        v = self._values
        sb, sn = self._stride_b, self._stride_n
        base = i * sb + j * sn + k
        # Interpolate along context, then new_tokens, then batch.
        a0 = v[base] + (v[base + 1] - v[base]) * tc
        a1 = v[base + sn] + (v[base + sn + 1] - v[base + sn]) * tc
        b0 = v[base + sb] + (v[base + sb + 1] - v[base + sb]) * tc
        b1 = v[base + sb + sn] + (v[base + sb + sn + 1] - v[base + sb + sn]) * tc
        lo = a0 + (a1 - a0) * tn
        hi = b0 + (b1 - b0) * tn
        return lo + (hi - lo) * tb


def _evaluate(
    fn: StepFn, points: list[Point], parallel: Literal["threads", "processes"] | None, max_workers: int | None
) -> list[float]:
    if not points:
        return []
    if parallel is None:
        return [float(fn(b, n, c)) for b, n, c in points]
    pool: Executor = (
        ProcessPoolExecutor(max_workers=max_workers)
        if parallel == "processes"
        else ThreadPoolExecutor(max_workers=max_workers)
    )
    with pool:
        bs, ns, cs = zip(*points)
        chunk = max(1, len(points) // (4 * (max_workers or 4)))
        return [float(s) for s in pool.map(fn, bs, ns, cs, chunksize=chunk)]
