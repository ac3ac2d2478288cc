"""Chrome/Perfetto trace JSON: one process per core, one track per engine and per DMA queue, counter tracks
for SBUF/PSUM (per core) and HBM (chip) occupancy, and flow arrows for data dependencies between engines.

Typed data (Profile, Timeline) inside; these pure functions turn it into JSON at the edge.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trnsim.isa.opcodes import Engine
from trnsim.report.dependencies import read_after_write
from trnsim.report.occupancy import occupancy
from trnsim.sim.memory import MemoryKind
from trnsim.sim.timeline import N_ENGINES

if TYPE_CHECKING:
    from trnsim.runtime.profile import Profile

# Flows beyond this many make the trace slow to open and the arrows unreadable; the first ones are kept.
MAX_FLOWS = 20_000
COUNTER_NAMES = {MemoryKind.SBUF: "SBUF occupancy", MemoryKind.PSUM: "PSUM occupancy", MemoryKind.HBM: "HBM occupancy"}
COUNTER_UNITS = {MemoryKind.SBUF: "bytes/partition", MemoryKind.PSUM: "bytes/partition", MemoryKind.HBM: "bytes"}
FLOW_NAME = "dependency"


def unit_name(unit: int) -> str:
    return Engine(unit).key if unit < N_ENGINES else f"dma q{unit - N_ENGINES}"


def _metadata(profile: Profile) -> list[dict[str, Any]]:
    tl = profile.timeline
    events: list[dict[str, Any]] = []
    for core in range(tl.n_cores):
        events.append({"name": "process_name", "ph": "M", "pid": core, "args": {"name": f"NeuronCore {core}"}})
        events.append({"name": "process_sort_index", "ph": "M", "pid": core, "args": {"sort_index": core}})
        for unit in range(N_ENGINES + tl.dma_queues):
            events.append(
                {"name": "thread_name", "ph": "M", "pid": core, "tid": unit, "args": {"name": unit_name(unit)}}
            )
            events.append(
                {"name": "thread_sort_index", "ph": "M", "pid": core, "tid": unit, "args": {"sort_index": unit}}
            )
    return events


def _slices(profile: Profile) -> list[dict[str, Any]]:
    tl = profile.timeline
    instrs = profile.instructions
    events: list[dict[str, Any]] = []
    for idx, core, unit, start, end in zip(
        tl.slice_instr.tolist(),
        tl.slice_core.tolist(),
        tl.slice_unit.tolist(),
        tl.slice_start.tolist(),
        tl.slice_end.tolist(),
    ):
        ins = instrs[idx]
        events.append(
            {
                "name": ins.label or ins.opcode.key,
                "cat": ins.opcode.key,
                "ph": "X",
                "ts": start / 1000.0,  # Chrome trace timestamps are µs
                "dur": max(end - start, 0.0) / 1000.0,
                "pid": core,
                "tid": unit,
                "args": {"instruction": idx, "source": ins.location},
            }
        )
    return events


def counter_events(profile: Profile) -> list[dict[str, Any]]:
    """'C' events: occupancy per core (SBUF, PSUM) and for the chip's HBM (its own process, after the cores)."""
    hbm_pid = profile.timeline.n_cores
    events: list[dict[str, Any]] = []
    for series in occupancy(profile):
        pid = hbm_pid if series.core is None else series.core
        name, unit = COUNTER_NAMES[series.kind], COUNTER_UNITS[series.kind]
        for t, value in zip(series.times_ns, series.bytes_):
            events.append({"name": name, "ph": "C", "ts": t / 1000.0, "pid": pid, "args": {unit: value}})
    if any(e["pid"] == hbm_pid for e in events):
        events.insert(0, {"name": "process_name", "ph": "M", "pid": hbm_pid, "args": {"name": "HBM (chip)"}})
        events.insert(1, {"name": "process_sort_index", "ph": "M", "pid": hbm_pid, "args": {"sort_index": hbm_pid}})
    return events


def flow_events(profile: Profile, max_flows: int = MAX_FLOWS) -> list[dict[str, Any]]:
    """'s'/'f' pairs from the producer's last slice to the consumer's first, for dependencies that cross
    engines or queues (within one in-order queue the order says it already)."""
    tl = profile.timeline
    first: dict[int, tuple[float, float, int, int]] = {}  # instruction -> (start, end, core, unit) of a slice
    last: dict[int, tuple[float, float, int, int]] = {}
    for idx, core, unit, s, e in zip(
        tl.slice_instr.tolist(),
        tl.slice_core.tolist(),
        tl.slice_unit.tolist(),
        tl.slice_start.tolist(),
        tl.slice_end.tolist(),
    ):
        if idx not in first or s < first[idx][0]:
            first[idx] = (s, e, core, unit)
        if idx not in last or e > last[idx][1]:
            last[idx] = (s, e, core, unit)
    events: list[dict[str, Any]] = []
    flow_id = 0
    for producer, consumer in read_after_write(profile.instructions, tl.n_cores):
        src, dst = last.get(producer), first.get(consumer)
        if src is None or dst is None or (src[2], src[3]) == (dst[2], dst[3]):
            continue
        flow_id += 1
        if flow_id > max_flows:
            break
        common = {"name": FLOW_NAME, "cat": FLOW_NAME, "id": flow_id}
        # 's' binds to the producer slice enclosing ts; 'f' with bp=e binds to the consumer slice at ts.
        events.append({**common, "ph": "s", "ts": src[0] / 1000.0, "pid": src[2], "tid": src[3]})
        events.append({**common, "ph": "f", "bp": "e", "ts": dst[0] / 1000.0, "pid": dst[2], "tid": dst[3]})
    return events


def trace_events(profile: Profile, flows: bool = True) -> list[dict[str, Any]]:
    events = _metadata(profile) + _slices(profile) + counter_events(profile)
    if flows:
        events += flow_events(profile)
    return events


def trace_document(profile: Profile, flows: bool = True) -> dict[str, Any]:
    return {
        "traceEvents": trace_events(profile, flows),
        "displayTimeUnit": "ns",
        "metadata": {
            "producer": "trnsim",
            "kernel": profile.kernel_name,
            "target": profile.target,
            "latency_us": profile.latency_us,
        },
    }


def write_trace(profile: Profile, path: Path, flows: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(trace_document(profile, flows)))
    return path


def instance_trace_document(named: list[tuple[str, Profile]], flows: bool = True) -> dict[str, Any]:
    """One trace for many ranks: each rank's cores (and its HBM counters) as processes named after the rank,
    on one clock (the ranks of a multi-rank run share simulated time)."""
    events: list[dict[str, Any]] = []
    base = 0
    flow_base = 0
    for name, profile in named:
        own = trace_events(profile, flows)
        top = max((e["pid"] for e in own if "pid" in e), default=0)
        for e in own:
            e = {**e, "pid": base + e["pid"]}
            if e["name"] == "process_name":
                e["args"] = {"name": f"{name} · {e['args']['name']}"}
            elif e["name"] == "process_sort_index":
                e["args"] = {"sort_index": e["pid"]}
            if e.get("cat") == FLOW_NAME:
                e["id"] = flow_base + e["id"]
            events.append(e)
        flow_base += sum(1 for e in own if e.get("cat") == FLOW_NAME and e["ph"] == "s")
        base += top + 1
    latency = max((p.latency_us for _, p in named), default=0.0)
    return {
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "metadata": {"producer": "trnsim", "ranks": [n for n, _ in named], "latency_us": latency},
    }
