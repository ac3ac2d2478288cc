"""What a multi-rank run reports: a Profile per rank on one clock, the outputs per rank, collective time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trnsim.isa.opcodes import Engine
from trnsim.report.perfetto import instance_trace_document
from trnsim.runtime.printable import PrintableTable
from trnsim.runtime.profile import Profile
from trnsim.runtime.units import fmt_time_us
from trnsim.sim.instance import InstanceLayout


@dataclass
class InstanceProfile:
    """`ranks[r]` is rank r's Profile (its own cores' timeline); every rank's times are on one clock."""

    kernel_name: str
    layout: InstanceLayout
    ranks: list[Profile]
    tenant: str = ""
    # per rank: indices of its sync instructions (collectives, sendrecv, core_barrier)
    sync_instructions: tuple[tuple[int, ...], ...] = ()

    @property
    def outputs(self) -> list[Any]:
        """Rank r's kernel outputs at index r."""
        return [p.outputs for p in self.ranks]

    @property
    def latency_us(self) -> float:
        """Until the last rank finishes."""
        return max((p.latency_us for p in self.ranks), default=0.0)

    @property
    def collective_us(self) -> list[float]:
        """Per rank: time its sync instructions held their engine (waiting for partners plus the links)."""
        out = []
        for p, idx in zip(self.ranks, self.sync_instructions or ((),) * len(self.ranks)):
            tl = p.timeline
            busy = 0.0
            for i in idx:
                m = (tl.slice_instr == i) & (tl.slice_unit < int(Engine.DMA))
                busy += float((tl.slice_end[m] - tl.slice_start[m]).sum())
            out.append(busy / 1000.0)
        return out

    @property
    def device_us(self) -> list[float]:
        return [p.latency_us for p in self.ranks]

    def names(self) -> list[str]:
        who = f"{self.tenant} " if self.tenant else ""
        return [f"{who}rank {r}" for r in range(len(self.ranks))]

    def to_dict(self) -> dict[str, Any]:
        lay = self.layout
        return {
            "kernel": self.kernel_name,
            "target": lay.spec.name,
            "instance": lay.instance.name if lay.instance else None,
            "lnc": lay.lnc,
            "tenant": self.tenant or None,
            "ranks": len(self.ranks),
            "latency_us": self.latency_us,
            "device_us": self.device_us,
            "collective_us": self.collective_us,
            "placement": [{"rank": p.rank, "chip": p.chip, "cores": list(p.cores)} for p in lay.ranks],
        }

    def summary(self) -> PrintableTable:
        lay = self.layout
        where = lay.instance.name if lay.instance else f"one {lay.spec.name} chip"
        table = PrintableTable(title=f"{self.kernel_name} on {len(self.ranks)} rank(s), {where}, LNC={lay.lnc}")
        for col in ("rank", "chip", "cores", "device time", "collectives"):
            table.add_column(col, justify="right" if col != "rank" else "left")
        for name, place, dev, coll in zip(self.names(), lay.ranks, self.device_us, self.collective_us):
            cores = ",".join(str(c) for c in place.cores)
            table.add_row(name, str(place.chip), cores, fmt_time_us(dev), fmt_time_us(coll))
        return table

    def to_perfetto(self, path: str | Path) -> Path:
        """One trace, a process per rank's core (plus its HBM counters)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(instance_trace_document(list(zip(self.names(), self.ranks)))))
        return out
