"""Running a sweep's points: in local worker processes (default) or as Ray tasks; rows in point order.

The evaluator must pickle (a module-level class, as sweep.evaluate.Evaluator is): local workers are started
with "spawn", so they work the same on Linux, macOS and Windows and never inherit a forked Ray or torch state.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from trnsim.sweep.errors import SweepError
from trnsim.sweep.space import SweepSpace

Point = dict[str, Any]
Row = dict[str, Any]
Evaluate = Callable[[Point], Row]
OnRow = Callable[[int, Row], None]  # (index of the point, its row), called in this process as each finishes
BACKENDS = ("local", "ray")


@contextmanager
def _progress(total: int, enabled: bool, label: str) -> Iterator[Callable[[], None]]:
    if not enabled:
        yield lambda: None
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


def _ignore(index: int, row: Row) -> None:
    pass


def _run_local(points: list[Point], evaluator: Evaluate, workers: int, progress: bool, on_row: OnRow) -> list[Row]:
    rows: list[Row | None] = [None] * len(points)
    with (
        _progress(len(points), progress, f"sweep: {len(points)} points on {workers} local processes") as advance,
        ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        pending: dict[Future[Row], int] = {pool.submit(evaluator, p): i for i, p in enumerate(points)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                i, row = pending.pop(future), future.result()
                rows[i] = row
                on_row(i, row)
                advance()
    return [r for r in rows if r is not None]


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a HOST:PORT nobody listens at (ray.init would retry for minutes); "auto" etc. pass through."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise SweepError(
            f"cannot reach the Ray cluster at {address!r} ({exc.strerror or exc}); check the address "
            "(ray://HEAD:10001 for Ray Client, HEAD:6379 on the cluster itself) or drop --ray-address for a local one"
        ) from None


def _call(evaluator: Evaluate, point: Point) -> Row:
    return evaluator(point)


def _run_ray(
    points: list[Point], evaluator: Evaluate, address: str | None, workers: int | None, progress: bool, on_row: OnRow
) -> list[Row]:
    try:
        import ray
    except ImportError:
        raise SweepError("the Ray backend needs Ray: pip install 'trnsim[ray]' (or run without --ray)") from None
    started = False
    if not ray.is_initialized():
        if address is None:
            # Ray's own notices (token setup, "Started a local Ray instance") are not the sweep's story
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        else:
            _check_reachable(address)
            try:
                ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise SweepError(f"cannot connect to the Ray cluster at {address!r}: {exc}") from None
        started = True
    try:
        remote = ray.remote(_call)
        shared = ray.put(evaluator)
        refs = [remote.remote(shared, p) for p in points]
        index = {ref: i for i, ref in enumerate(refs)}
        rows: list[Row | None] = [None] * len(points)
        where = address or "a local Ray cluster"
        with _progress(len(points), progress, f"sweep: {len(points)} points on {where}") as advance:
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    i, row = index[ref], ray.get(ref)
                    rows[i] = row
                    on_row(i, row)
                    advance()
        return [r for r in rows if r is not None]
    finally:
        if started:
            ray.shutdown()


def run_sweep(
    space: SweepSpace | Sequence[Point],
    evaluator: Evaluate,
    backend: Literal["local", "ray"] = "local",
    address: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    on_row: OnRow | None = None,
) -> list[Row]:
    """Evaluate every point of `space` (or a list of points) and return one row per point, in point order.

    backend "local": `workers` spawned processes (default: CPU count, at most one per point; workers=1 runs
    in this process). backend "ray": one Ray task per point on the cluster at `address` ("ray://host:10001",
    "auto"), or on a Ray session already started in this process, or on a local cluster started (with
    `workers` CPUs) and stopped here when address is None. `on_row(index, row)` is called in this process as
    each point finishes (in completion order), e.g. to write it down before the sweep ends.
    """
    points = space.points() if isinstance(space, SweepSpace) else [dict(p) for p in space]
    if backend not in BACKENDS:
        raise SweepError(f"unknown sweep backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if workers is not None and workers < 1:
        raise SweepError(f"workers must be >= 1, got {workers}")
    if address is not None and backend != "ray":
        raise SweepError("a Ray address needs the ray backend (--ray)")
    if not points:
        return []
    on_row = on_row or _ignore
    if backend == "ray":
        return _run_ray(points, evaluator, address, workers, progress, on_row)
    n = min(workers or os.cpu_count() or 1, len(points))
    if n == 1:
        rows = []
        with _progress(len(points), progress, f"sweep: {len(points)} points in this process") as advance:
            for i, p in enumerate(points):
                rows.append(evaluator(p))
                on_row(i, rows[-1])
                advance()
        return rows
    return _run_local(points, evaluator, n, progress, on_row)
