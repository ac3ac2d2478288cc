"""Chrome/Perfetto trace JSON: one process per core, one track per engine and per DMA queue.

Typed data (Profile, Timeline) inside; this pure function turns it into JSON at the edge.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trnsim.isa.opcodes import Engine
from trnsim.sim.timeline import N_ENGINES

if TYPE_CHECKING:
    from trnsim.runtime.profile import Profile


def unit_name(unit: int) -> str:
    return Engine(unit).key if unit < N_ENGINES else f"dma q{unit - N_ENGINES}"


def trace_events(profile: Profile) -> list[dict[str, Any]]:
    tl = profile.timeline
    events: list[dict[str, Any]] = []
    for core in range(tl.n_cores):
        events.append({"name": "process_name", "ph": "M", "pid": core, "args": {"name": f"NeuronCore {core}"}})
        for unit in range(N_ENGINES + tl.dma_queues):
            events.append(
                {"name": "thread_name", "ph": "M", "pid": core, "tid": unit, "args": {"name": unit_name(unit)}}
            )
            events.append(
                {"name": "thread_sort_index", "ph": "M", "pid": core, "tid": unit, "args": {"sort_index": unit}}
            )
    instrs = profile.instructions
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
                "name": ins.label,
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


def write_trace(profile: Profile, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "traceEvents": trace_events(profile),
        "displayTimeUnit": "ns",
        "metadata": {"kernel": profile.kernel_name, "target": profile.target, "latency_us": profile.latency_us},
    }
    path.write_text(json.dumps(doc))
    return path
