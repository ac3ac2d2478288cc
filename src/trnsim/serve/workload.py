"""A workload: how many requests, when they arrive, how long their prompts and outputs are.

`Workload(...).generate()` draws the requests with a seeded numpy Generator. Arrival times, prompt lengths,
output lengths and prefix groups come from separate streams of the seed, so the same workload at another
rate has the same requests at stretched times (common random numbers make rate searches monotone).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from trnsim.serve.arrivals import Arrivals, ClosedLoop, GammaArrivals, OpenArrivals, Poisson
from trnsim.serve.errors import ServeError
from trnsim.serve.lengths import Lengths
from trnsim.serve.trace import Trace

# One run keeps every request's record in memory (about 500 bytes each, measured on 300,000 requests), and
# simulates some 50,000 requests per second: past this a run takes minutes and gigabytes.
MAX_REQUESTS = 5_000_000


@dataclass(frozen=True)
class SharedPrefix:
    """A fraction of requests start with one of `groups` shared prefixes of `tokens` tokens (a system prompt).

    Such a request's prompt is the prefix plus its own part drawn from the prompt lengths.
    """

    groups: int
    tokens: int
    fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.groups < 1 or self.tokens < 1 or not 0 <= self.fraction <= 1:
            raise ServeError(
                f"SharedPrefix needs groups >= 1, tokens >= 1 and 0 <= fraction <= 1, got {self.groups}, "
                f"{self.tokens}, {self.fraction}"
            )


@dataclass(frozen=True)
class RequestSet:
    """The drawn requests, by request id. arrival_s is NaN for closed-loop requests (decided while running)."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    prefix_group: np.ndarray  # -1: no shared prefix
    prefix_tokens: np.ndarray  # 0 when no shared prefix; counted inside prompt_tokens
    concurrency: int | None  # closed loop: clients; None: open loop

    def __len__(self) -> int:
        return len(self.prompt_tokens)


@dataclass(frozen=True)
class Workload:
    num_requests: int
    arrival: Arrivals | None = None
    prompt: Lengths | None = None
    output: Lengths | None = None
    trace: Trace | None = None  # lengths (and arrivals, if it has them) from a trace instead
    prefix: SharedPrefix | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.num_requests) != self.num_requests or self.num_requests < 1:
            raise ServeError(f"num_requests must be a whole number >= 1, got {self.num_requests}")
        if self.num_requests > MAX_REQUESTS:
            raise ServeError(
                f"{self.num_requests:,} requests is more than one run simulates (at most {MAX_REQUESTS:,}: each "
                "request's record stays in memory, about 500 bytes); a steady-state answer needs far fewer (the "
                "rate search of `trnsim compare` sizes its own runs)"
            )
        if self.trace is None:
            if self.prompt is None or self.output is None:
                raise ServeError("a Workload needs prompt= and output= lengths, or a trace=")
            if self.arrival is None:
                raise ServeError(
                    "a Workload needs arrival= (Poisson, GammaArrivals, ClosedLoop) or a trace with arrival_s"
                )
        else:
            if self.prompt is not None or self.output is not None:
                raise ServeError("give either trace= or prompt=/output= lengths, not both")
            if self.arrival is None and self.trace.arrival_s is None:
                raise ServeError("the trace has no arrival_s column: pass arrival= (a rate or a concurrency)")
            if self.num_requests > len(self.trace):
                raise ServeError(f"num_requests={self.num_requests} but the trace has only {len(self.trace)} requests")

    def with_rate(self, rate: float) -> Workload:
        """The same requests arriving at another rate (open-loop arrival processes only)."""
        if not isinstance(self.arrival, Poisson | GammaArrivals):
            raise ServeError("changing the rate needs a Poisson or GammaArrivals arrival process, not a closed loop")
        arrival: OpenArrivals = self.arrival.with_rate(rate)
        return replace(self, arrival=arrival)

    @property
    def max_request_tokens(self) -> int:
        """The most tokens (prompt + output) any request of this workload can hold in the KV cache."""
        if self.trace is not None:
            n = self.num_requests
            return int((self.trace.prompt_tokens[:n] + self.trace.output_tokens[:n]).max())
        assert self.prompt is not None and self.output is not None
        extra = self.prefix.tokens if self.prefix is not None else 0
        return self.prompt.max_tokens + extra + self.output.max_tokens

    def generate(self) -> RequestSet:
        n = self.num_requests
        arrival_rng, prompt_rng, output_rng, prefix_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(self.seed).spawn(4)
        )
        if self.trace is not None:
            prompt = self.trace.prompt_tokens[:n].copy()
            output = self.trace.output_tokens[:n].copy()
        else:
            assert self.prompt is not None and self.output is not None
            prompt = self.prompt.sample(prompt_rng, n)
            output = self.output.sample(output_rng, n)
        group = np.full(n, -1, dtype=np.int64)
        prefix_tokens = np.zeros(n, dtype=np.int64)
        if self.prefix is not None:
            shared = prefix_rng.random(n) < self.prefix.fraction
            group[shared] = prefix_rng.integers(0, self.prefix.groups, size=int(shared.sum()))
            prefix_tokens[shared] = self.prefix.tokens
            prompt = prompt + prefix_tokens
        concurrency = None
        if isinstance(self.arrival, ClosedLoop):
            arrival = np.full(n, np.nan)
            concurrency = self.arrival.concurrency
        elif self.arrival is not None:
            arrival = self.arrival.times(arrival_rng, n)
        else:
            assert self.trace is not None and self.trace.arrival_s is not None
            arrival = self.trace.arrival_s[:n].copy()
            order = np.argsort(arrival, kind="stable")  # replay in time order; ids follow it
            arrival, prompt, output = arrival[order], prompt[order], output[order]
            group, prefix_tokens = group[order], prefix_tokens[order]
        return RequestSet(arrival, prompt, output, group, prefix_tokens, concurrency)
