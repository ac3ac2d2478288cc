"""A serving run as a Perfetto / chrome://tracing timeline: requests and batches on tracks, and counters.

One process per replica. Its "steps" track shows every model step (prefill, decode or mixed, with batch
size and tokens). Each request is a track of its own, showing "queued" (arrival to KV admission), "prefill"
(admission to first token) and "decode" (first to last token). Counters give batch size, queue depth and
KV-cache use over time. Needs a run with `record_steps=True`. Load the JSON at https://ui.perfetto.dev.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trnsim.serve.errors import ServeError
from trnsim.serve.result import ServeResult

MAX_REQUEST_TRACKS = 2000  # more requests make a timeline no viewer can open; the counters still cover all
_US = 1e6


def _slice(pid: int, tid: int, name: str, start_s: float, end_s: float, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "ph": "X",
        "pid": pid,
        "tid": tid,
        "name": name,
        "ts": start_s * _US,
        "dur": (end_s - start_s) * _US,
        "args": args,
    }


def serving_trace_document(result: ServeResult, max_request_tracks: int = MAX_REQUEST_TRACKS) -> dict[str, Any]:
    """The trace (chrome JSON object format) of a run simulated with record_steps=True."""
    if result.step_log is None:
        raise ServeError("a serving timeline needs the run's steps: simulate(..., record_steps=True)")
    events: list[dict[str, Any]] = []
    for r, replica in enumerate(result.replicas):
        label = replica.name or f"replica {r}"
        events.append({"ph": "M", "pid": r, "name": "process_name", "args": {"name": label}})
        events.append({"ph": "M", "pid": r, "tid": 0, "name": "thread_name", "args": {"name": "steps"}})
    kv_capacity = [int(b) for b in result.kv_blocks]
    for step in result.step_log:
        kind = "decode" if not step.prefill_seqs else "prefill" if not step.decode_seqs else "mixed"
        args = {"batch": step.batch, "new_tokens": step.new_tokens, "mean_context": round(step.context, 1)}
        events.append(_slice(step.replica, 0, kind, step.start_s, step.end_s, args))
        counters: dict[str, float] = {"batch": step.batch, "queue depth": step.queue_depth}
        counters["KV cache used %"] = round(100 * step.kv_used_blocks / max(kv_capacity[step.replica], 1), 2)
        for name, value in counters.items():
            events.append(
                {"ph": "C", "pid": step.replica, "name": name, "ts": step.start_s * _US, "args": {name: value}}
            )
    for rid in range(min(len(result.arrival_s), max_request_tracks)):
        pid, tid = int(result.replica[rid]), rid + 1
        events.append({"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": f"request {rid}"}})
        phases = (
            ("queued", result.arrival_s[rid], result.scheduled_s[rid]),
            ("prefill", result.scheduled_s[rid], result.first_token_s[rid]),
            ("decode", result.first_token_s[rid], result.finish_s[rid]),
        )
        args = {"prompt_tokens": int(result.prompt_tokens[rid]), "output_tokens": int(result.output_tokens[rid])}
        for name, start, end in phases:
            if end > start:
                events.append(_slice(pid, tid, name, float(start), float(end), args))
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": {"model": result.model.name}}


def write_serving_trace(result: ServeResult, path: str | Path) -> Path:
    out = Path(path)
    out.write_text(json.dumps(serving_trace_document(result)))
    return out
