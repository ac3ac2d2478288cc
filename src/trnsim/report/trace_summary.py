"""Summarise a Chrome-trace JSON written by trnsim without a browser: top instructions by time, busy time
and utilisation per engine / DMA queue, the bottleneck, and peak memory occupancy from the counter tracks."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from trnsim.errors import TrnsimError
from trnsim.runtime.units import fmt_time_us

DMA_QUEUE_PREFIX = "dma q"  # trnsim names DMA queue tracks "dma q0", "dma q1", ...
ANY_DMA = "dma (any queue)"


class TraceError(TrnsimError):
    """A trace file is missing, is not JSON, or holds no Chrome-trace events."""


@dataclass(frozen=True)
class NameTime:
    name: str
    count: int
    total_us: float


@dataclass(frozen=True)
class TrackBusy:
    process: str
    track: str
    busy_us: float
    utilisation: float  # busy / trace span


@dataclass(frozen=True)
class TraceSummary:
    source: str
    span_us: float  # first slice start to last slice end
    top: list[NameTime]  # by total slice time (a DMA spread over queues counts each queue's time)
    tracks: list[TrackBusy]  # busiest first; per process also "dma (any queue)": time any DMA queue is busy
    bottleneck: str  # busiest engine, "process / track", with the DMA queues of a process taken together
    counter_peaks: dict[str, float]  # "process / counter (unit)" -> peak value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def engine_tracks(self, per_queue: bool = False) -> list[TrackBusy]:
        """The busy-time rows: engines and each process's DMA queues taken together, or every queue too."""
        return [t for t in self.tracks if per_queue or not t.track.startswith(DMA_QUEUE_PREFIX)]

    def tables(self, per_queue: bool = False) -> list[Table]:
        top = Table(title=f"top instructions in {self.source} (span {fmt_time_us(self.span_us)})")
        for col in ("name", "slices", "time, all tracks", "per µs of span"):
            top.add_column(col, justify="left" if col == "name" else "right")
        for item in self.top:
            per_span = item.total_us / self.span_us if self.span_us else 0.0
            top.add_row(item.name, f"{item.count:,}", fmt_time_us(item.total_us), f"{per_span:.2f}")
        queues = "each DMA queue" if per_queue else "DMA queues taken together (--per-queue: each)"
        busy = Table(title=f"busy time per engine, {queues}; busiest: {self.bottleneck}")
        for col in ("process", "track", "busy", "utilisation"):
            busy.add_column(col, justify="left" if col in ("process", "track") else "right")
        for t in self.engine_tracks(per_queue):
            busy.add_row(t.process, t.track, fmt_time_us(t.busy_us), f"{100 * t.utilisation:.1f}%")
        out = [top, busy]
        if self.counter_peaks:
            peaks = Table(title="peak memory occupancy")
            peaks.add_column("counter")
            peaks.add_column("peak", justify="right")
            for name, value in self.counter_peaks.items():
                peaks.add_row(name, f"{value:,.0f}")
            out.append(peaks)
        return out


def load_trace(path: Path) -> list[dict[str, Any]]:
    """The event list of a Chrome-trace file (object with traceEvents, or a bare array)."""
    if not path.is_file():
        raise TraceError(f"trace file {path} not found")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TraceError(
            f"{path} line {exc.lineno}: not valid JSON ({exc.msg}); expected a Chrome-trace file "
            "as written by `trnsim kernel --trace`"
        ) from None
    except UnicodeDecodeError:
        raise TraceError(f"{path}: not a text file; expected a Chrome-trace JSON file") from None
    events = doc.get("traceEvents") if isinstance(doc, dict) else doc
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise TraceError(
            f"{path}: no Chrome-trace events; expected an object with a 'traceEvents' list "
            "(or a list of events), as written by `trnsim kernel --trace`"
        )
    return events


def _union_us(intervals: list[tuple[float, float]]) -> float:
    total, cur_s, cur_e = 0.0, None, 0.0
    for s, e in sorted(intervals):
        if cur_s is None or s > cur_e:
            if cur_s is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_s is not None:
        total += cur_e - cur_s
    return total


def summarize(events: list[dict[str, Any]], source: str = "trace", top: int = 10) -> TraceSummary:
    proc_names: dict[Any, str] = {}
    track_names: dict[tuple[Any, Any], str] = {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            proc_names[e.get("pid")] = str(e.get("args", {}).get("name", e.get("pid")))
        elif e.get("ph") == "M" and e.get("name") == "thread_name":
            track_names[(e.get("pid"), e.get("tid"))] = str(e.get("args", {}).get("name", e.get("tid")))
    by_name: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    per_track: dict[tuple[Any, Any], list[tuple[float, float]]] = defaultdict(list)
    peaks: dict[str, float] = {}
    lo, hi = float("inf"), float("-inf")
    for e in events:
        ph = e.get("ph")
        if ph == "X":
            s, d = float(e.get("ts", 0.0)), float(e.get("dur", 0.0))
            item = by_name[str(e.get("name", "?"))]
            item[0] += 1
            item[1] += d
            per_track[(e.get("pid"), e.get("tid"))].append((s, s + d))
            lo, hi = min(lo, s), max(hi, s + d)
        elif ph == "C":
            process = proc_names.get(e.get("pid"), str(e.get("pid")))
            for key, value in (e.get("args") or {}).items():
                if isinstance(value, int | float):
                    label = f"{process} / {e.get('name')} ({key})"
                    peaks[label] = max(peaks.get(label, float("-inf")), float(value))
    span = hi - lo if hi > lo else 0.0
    tracks = []
    any_dma: dict[Any, list[tuple[float, float]]] = defaultdict(list)
    for (pid, tid), intervals in per_track.items():
        busy = _union_us(intervals)
        name = track_names.get((pid, tid), str(tid))
        tracks.append(TrackBusy(proc_names.get(pid, str(pid)), name, busy, busy / span if span else 0.0))
        if name.startswith(DMA_QUEUE_PREFIX):
            any_dma[pid] += intervals
    engines = [t for t in tracks if not t.track.startswith(DMA_QUEUE_PREFIX)]
    for pid, intervals in any_dma.items():
        busy = _union_us(intervals)
        engines.append(TrackBusy(proc_names.get(pid, str(pid)), ANY_DMA, busy, busy / span if span else 0.0))
        tracks.append(engines[-1])
    tracks.sort(key=lambda t: -t.busy_us)
    busiest = max(engines, key=lambda t: t.busy_us, default=None)
    ranked = sorted(by_name.items(), key=lambda kv: -kv[1][1])[:top]
    return TraceSummary(
        source=source,
        span_us=span,
        top=[NameTime(name, int(v[0]), v[1]) for name, v in ranked],
        tracks=tracks,
        bottleneck=f"{busiest.process} / {busiest.track}" if busiest else "none",
        counter_peaks=peaks,
    )


def summarize_file(path: Path, top: int = 10) -> TraceSummary:
    if top < 1:
        raise TraceError(f"--top must be at least 1, got {top}")
    return summarize(load_trace(path), str(path), top)
