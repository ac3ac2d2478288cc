"""Serving inputs from command-line style values (what `trnsim serve` / `trnsim plan` parse).

parse_lengths: "2048" -> Fixed, "128-2048" -> Uniform, "zipf:1.2:16-4096" -> Zipf.
make_workload: a Workload from either a rate or a concurrency, lengths, or a trace file.
"""

from __future__ import annotations

import os

from trnsim.serve.arrivals import Arrivals, ClosedLoop, GammaArrivals, Poisson
from trnsim.serve.errors import ServeError
from trnsim.serve.lengths import Fixed, Lengths, Uniform, Zipf
from trnsim.serve.trace import load_trace
from trnsim.serve.workload import SharedPrefix, Workload

_LENGTH_FORMS = "N (fixed), LOW-HIGH (uniform) or zipf:S:LOW-HIGH"


def _whole(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ServeError(f"{what}: {text!r} is not a whole number; use {_LENGTH_FORMS}") from None


def parse_lengths(text: str | int | Lengths, what: str = "length") -> Lengths:
    if isinstance(text, Fixed | Uniform | Zipf):
        return text
    if isinstance(text, int):
        return Fixed(text)
    spec = text.strip().lower()
    if spec.startswith("zipf:"):
        parts = spec.split(":")
        if len(parts) != 3 or "-" not in parts[2]:
            raise ServeError(f"{what}: {text!r} is not zipf:S:LOW-HIGH (e.g. zipf:1.2:16-4096)")
        try:
            s = float(parts[1])
        except ValueError:
            raise ServeError(f"{what}: Zipf exponent {parts[1]!r} is not a number") from None
        low, high = parts[2].split("-", 1)
        return Zipf(s, _whole(low, what), _whole(high, what))
    if "-" in spec:
        low, high = spec.split("-", 1)
        return Uniform(_whole(low, what), _whole(high, what))
    return Fixed(_whole(spec, what))


def make_workload(
    num_requests: int | None,
    *,
    rate: float | None = None,
    concurrency: int | None = None,
    cv: float | None = None,
    prompt: str | int | Lengths | None = None,
    output: str | int | Lengths | None = None,
    trace: str | os.PathLike[str] | None = None,
    prefix: SharedPrefix | None = None,
    seed: int = 0,
) -> Workload:
    """One of rate (open loop; Gamma arrivals when cv is given, Poisson otherwise) or concurrency (closed
    loop), or neither when the trace has arrival times. num_requests None: the whole trace."""
    if rate is not None and concurrency is not None:
        raise ServeError("give either a rate (requests/s) or a concurrency (clients), not both")
    if cv is not None and rate is None:
        raise ServeError("cv (arrival burstiness) needs a rate")
    arrival: Arrivals | None = None
    if rate is not None:
        arrival = GammaArrivals(rate, cv) if cv is not None else Poisson(rate)
    elif concurrency is not None:
        arrival = ClosedLoop(concurrency)
    if trace is not None:
        if prompt is not None or output is not None:
            raise ServeError("give either a trace file or prompt/output lengths, not both")
        loaded = load_trace(trace)
        n = len(loaded) if num_requests is None else num_requests
        return Workload(n, arrival, trace=loaded, prefix=prefix, seed=seed)
    if arrival is None:
        raise ServeError("give a rate (requests/s), a concurrency (clients), or a trace with arrival_s")
    if prompt is None or output is None:
        raise ServeError("give prompt and output lengths (N, LOW-HIGH or zipf:S:LOW-HIGH) or a trace file")
    if num_requests is None:
        raise ServeError("give the number of requests to simulate")
    return Workload(
        num_requests,
        arrival,
        parse_lengths(prompt, "prompt"),
        parse_lengths(output, "output"),
        prefix=prefix,
        seed=seed,
    )
