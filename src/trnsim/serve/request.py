"""A request while it is inside the simulator: its lengths, progress and the times it reaches milestones."""

from __future__ import annotations

from collections.abc import Hashable


class LiveRequest:
    """Mutable per-request state. `emitted` counts output tokens produced so far (while decoding in a
    DecodePool it is brought up to date only when the request leaves the pool)."""

    __slots__ = (
        "arrival_s",
        "c0",
        "cached_tokens",
        "computed",
        "emitted",
        "epoch",
        "finish_clock",
        "finish_s",
        "first_token_s",
        "id",
        "known",
        "kv_start",
        "output",
        "preemptions",
        "prefix_group",
        "prefix_keys",
        "prefix_tokens",
        "prompt",
        "replica",
        "running",
        "scheduled_s",
        "token_log",
    )

    def __init__(
        self, rid: int, arrival_s: float, prompt: int, output: int, prefix_group: int, prefix_tokens: int
    ) -> None:
        self.id = rid
        self.arrival_s = arrival_s
        self.prompt = prompt
        self.output = output
        self.prefix_group = prefix_group
        self.prefix_tokens = prefix_tokens
        self.prefix_keys: tuple[Hashable, ...] = ()
        self.emitted = 0
        self.known = 0  # tokens to hold in KV at admission: prompt + emitted (recompute after preemption)
        self.computed = 0  # of `known`, tokens whose KV exists (prefix hits + prefill chunks done)
        self.cached_tokens = 0  # prefix-cache hits over all admissions
        self.kv_start = 0  # KV length when it entered the decode pool
        self.c0 = 0  # decode-pool clock when it entered
        self.finish_clock = 0  # decode-pool clock at which its last token is out
        self.epoch = 0  # bumps on every admission, to skip stale preemption-heap entries
        self.running = False
        self.preemptions = 0
        self.replica = -1
        self.scheduled_s = float("nan")
        self.first_token_s = float("nan")
        self.finish_s = float("nan")
        # Token times, when recorded: floats (single tokens from prefill steps) and (c0, c1) decode-clock spans.
        self.token_log: list[float | tuple[int, int]] | None = None
