"""Perfetto trace: counters against a brute-force liveness recomputation, flows against an element-level
last-writer replay of the instruction stream, and the timing they must respect."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trnsim.report.dependencies import read_after_write
from trnsim.report.perfetto import COUNTER_NAMES, counter_events, flow_events, write_trace
from trnsim.sim import MemoryKind
from trnsim.sim.scheduler import interleave_cores


def _spans(prof):
    """Allocation id -> (first start, last end), recomputed with numpy from the timeline."""
    spans = {}
    for idx, ins in enumerate(prof.instructions):
        for r in ins.reads + ins.writes:
            s, e = prof.timeline.instr_start[idx], prof.timeline.instr_end[idx]
            lo, hi = spans.get(r[0], (np.inf, -np.inf))
            spans[r[0]] = (min(lo, s), max(hi, e))
    return spans


def _live_bytes(machine, spans, kind, core, t):
    """Bytes of `kind` on `core` live at time t: allocated at first access, freed at last (HBM: never freed)."""
    total = 0
    for aid, (first, last) in spans.items():
        rec = machine.allocations[aid]
        if rec.kind is not kind or (kind is not MemoryKind.HBM and rec.core != core):
            continue
        if kind is MemoryKind.HBM:
            total += rec.nbytes if (rec.issued_before == 0 or first <= t) else 0
        elif first <= t < last:
            total += rec.nbytes
    return total


@pytest.mark.parametrize("cores", [1, 2])
def test_counters_match_brute_force_liveness(random_matmul, rng, cores):
    for _ in range(2):
        prof, machine, _ = random_matmul(rng, cores)
        events = counter_events(prof)
        spans = _spans(prof)
        names = {v: k for k, v in COUNTER_NAMES.items()}
        seen = set()
        for ev in events:
            if ev["ph"] != "C":
                continue
            kind = names[ev["name"]]
            seen.add(kind)
            (value,) = ev["args"].values()
            assert value >= 0
            core = None if kind is MemoryKind.HBM else ev["pid"]
            # ts is in us: ns -> us -> ns may land one ulp before the instant where allocations change
            assert value == _live_bytes(machine, spans, kind, core, ev["ts"] * 1000.0 + 1e-6)
        assert seen == {MemoryKind.SBUF, MemoryKind.PSUM, MemoryKind.HBM}
        for kind in (MemoryKind.SBUF, MemoryKind.PSUM):
            series = [ev for ev in events if ev.get("name") == COUNTER_NAMES[kind]]
            assert list(series[-1]["args"].values()) == [0]  # everything freed by the end
            peak = max(next(iter(ev["args"].values())) for ev in series)
            # live bytes fit under the highest address the allocator handed out
            high_water = max(r.offset + r.nbytes for r in machine.allocations.values() if r.kind is kind)
            assert 0 < peak <= high_water
        hbm = [ev for ev in events if ev.get("name") == COUNTER_NAMES[MemoryKind.HBM]]
        touched = sum(machine.allocations[a].nbytes for a in spans if machine.allocations[a].kind is MemoryKind.HBM)
        assert list(hbm[-1]["args"].values()) == [touched]


@pytest.mark.parametrize("cores", [1, 2])
def test_tiles_live_at_the_same_time_never_share_bytes(random_matmul, rng, cores):
    """What makes the occupancy counter physical: the scheduler orders a tile that reuses freed bytes after
    the last access to their previous owner."""
    for _ in range(2):
        prof, machine, _ = random_matmul(rng, cores)
        spans = _spans(prof)
        recs = [(machine.allocations[a], s) for a, s in spans.items()]
        for i, (ra, (fa, la)) in enumerate(recs):
            for rb, (fb, lb) in recs[i + 1 :]:
                if ra.kind is MemoryKind.HBM or (ra.kind, ra.core) != (rb.kind, rb.core):
                    continue
                if ra.offset < rb.offset + rb.nbytes and rb.offset < ra.offset + ra.nbytes:
                    assert la <= fb or lb <= fa


def _brute_force_raw(instructions, n_cores):
    """Element-level replay: every allocation as an array of 'last writer' ids over its 3-D box view."""
    extent: dict[int, list[int]] = {}
    for ins in instructions:
        for r in ins.reads + ins.writes:
            ext = extent.setdefault(r[0], [0, 0, 0])
            ext[0], ext[1], ext[2] = max(ext[0], r[2]), max(ext[1], r[4]), max(ext[2], r[6])
    writer = {aid: np.full(ext, -1, dtype=np.int64) for aid, ext in extent.items()}
    edges = set()
    for i in interleave_cores(instructions, n_cores):
        ins = instructions[i]
        for r in ins.reads:
            ids = np.unique(writer[r[0]][r[1] : r[2], r[3] : r[4], r[5] : r[6]])
            edges |= {(int(p), i) for p in ids if p >= 0 and p != i}
        for r in ins.writes:
            writer[r[0]][r[1] : r[2], r[3] : r[4], r[5] : r[6]] = i
    return edges


def test_dependencies_equal_element_level_replay(random_matmul, exp_profile, rng):
    for _ in range(3):
        prof, _, _ = random_matmul(rng)
        edges = read_after_write(prof.instructions, prof.n_cores)
        assert len(edges) == len(set(edges))
        assert set(edges) == _brute_force_raw(prof.instructions, prof.n_cores)
    x = rng.standard_normal((128 * int(rng.integers(1, 4)), int(rng.integers(1, 300)))).astype(np.float32)
    prof, _ = exp_profile(x)
    assert set(read_after_write(prof.instructions, 1)) == _brute_force_raw(prof.instructions, 1)


@pytest.mark.parametrize("cores", [1, 2])
def test_flows_pair_up_and_respect_the_schedule(random_matmul, rng, cores):
    prof, _, _ = random_matmul(rng, cores)
    assert prof.n_cores == cores
    events = flow_events(prof)
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    finishes = {e["id"]: e for e in events if e["ph"] == "f"}
    assert starts and set(starts) == set(finishes) and len(events) == 2 * len(starts)
    tl = prof.timeline
    by_start = {
        (c, u, s / 1000.0): i for i, c, u, s in zip(tl.slice_instr, tl.slice_core, tl.slice_unit, tl.slice_start)
    }
    for fid, s in starts.items():
        f = finishes[fid]
        assert (s["pid"], s["tid"]) != (f["pid"], f["tid"])  # only dependencies across engines / queues
        producer, consumer = by_start[(s["pid"], s["tid"], s["ts"])], by_start[(f["pid"], f["tid"], f["ts"])]
        # the consumer starts only once the producer's result is there
        assert tl.instr_end[producer] <= tl.instr_start[consumer] + 1e-9
        assert f["bp"] == "e" and s["cat"] == f["cat"] and s["name"] == f["name"]


@pytest.mark.parametrize("cores", [1, 2])
def test_trace_file_has_processes_tracks_counters_and_flows(random_matmul, rng, tmp_path, cores):
    prof, _, _ = random_matmul(rng, cores)
    doc = json.loads(write_trace(prof, tmp_path / "t.json").read_text())
    events = doc["traceEvents"]
    procs = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert procs == {**{c: f"NeuronCore {c}" for c in range(cores)}, cores: "HBM (chip)"}
    counters = {(e["pid"], e["name"]) for e in events if e["ph"] == "C"}
    assert counters == {(cores, "HBM occupancy")} | {
        (c, f"{m} occupancy") for c in range(cores) for m in ("SBUF", "PSUM")
    }
    threads = {e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert {"tensor", "vector", "scalar", "gpsimd", "sync"} <= threads
    assert {f"dma q{q}" for q in range(prof.timeline.dma_queues)} <= threads
    assert {e["ph"] for e in events} == {"M", "X", "C", "s", "f"}
    slices = [e for e in events if e["ph"] == "X"]
    assert len(slices) == len(prof.timeline.slice_instr)
    assert max(e["ts"] + e["dur"] for e in slices) <= prof.latency_us + 1e-9
