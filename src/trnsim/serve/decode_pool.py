"""The decoding requests of one replica, advanced in lockstep without touching each one every step.

Every request in the pool gains the same number of tokens per step (1, or the step's accepted speculative
tokens), so its state is a function of one shared clock: a request that entered at clock c0 with KV length
L0 has KV length L0 + (clock - c0) and is done at clock c0 + (tokens it still had to produce). The pool
therefore finds, in O(1) per step plus O(1) per event, which requests finish (a dict keyed by finish clock)
and which cross into a new KV block (requests grouped by (L0 - c0) mod block size) - 100k requests with
hundreds of tokens each would otherwise cost tens of millions of Python operations.
"""

from __future__ import annotations

from trnsim.serve.request import LiveRequest


class DecodePool:
    def __init__(self, block_tokens: int, record_token_times: bool = False) -> None:
        self.block_tokens = block_tokens
        self.clock = 0
        self.count = 0
        self._offset_sum = 0  # sum of (kv_start - c0) over members: KV total = this + count * clock
        # dicts, not sets: insertion order keeps runs reproducible (set order would follow memory addresses)
        self._buckets: list[dict[LiveRequest, None]] = [{} for _ in range(block_tokens)]
        self._finish_at: dict[int, dict[LiveRequest, None]] = {}
        # tick_times[c] is when the clock reached c + 1 (needed only to rebuild every token's time).
        self.tick_times: list[float] | None = [] if record_token_times else None

    def __len__(self) -> int:
        return self.count

    @property
    def kv_tokens(self) -> int:
        """Total KV length of all members now."""
        return self._offset_sum + self.count * self.clock

    def add(self, req: LiveRequest) -> None:
        """Start decoding a request that has `emitted` < `output` tokens and KV length `kv_start`."""
        req.c0 = self.clock
        req.finish_clock = self.clock + req.output - req.emitted
        offset = req.kv_start - self.clock
        self._offset_sum += offset
        self.count += 1
        self._buckets[offset % self.block_tokens][req] = None
        members = self._finish_at.get(req.finish_clock)
        if members is None:
            self._finish_at[req.finish_clock] = {req: None}
        else:
            members[req] = None

    def _drop(self, req: LiveRequest, end_clock: int) -> None:
        offset = req.kv_start - req.c0
        self._offset_sum -= offset
        self.count -= 1
        del self._buckets[offset % self.block_tokens][req]
        if req.token_log is not None and end_clock > req.c0:
            req.token_log.append((req.c0, end_clock))

    def remove(self, req: LiveRequest) -> int:
        """Take a request out mid-way (preemption); brings `emitted` up to date; returns its KV length."""
        self._drop(req, self.clock)
        members = self._finish_at[req.finish_clock]
        del members[req]
        if not members:
            del self._finish_at[req.finish_clock]
        req.emitted += self.clock - req.c0
        return req.kv_start + self.clock - req.c0

    def growth(self, tokens: int) -> list[tuple[LiveRequest, int]]:
        """Requests that need one more KV block for the next step of `tokens` tokens each, with the KV length
        that block must cover. A request grows only for tokens it will still produce."""
        needs: list[tuple[LiveRequest, int]] = []
        bs = self.block_tokens
        for c in range(self.clock, self.clock + tokens):
            # At clock c a member's KV length L0 + c - c0 is a whole number of blocks when (L0 - c0) = -c mod bs.
            for req in self._buckets[-c % bs]:
                if c < req.finish_clock:
                    needs.append((req, req.kv_start + c - req.c0 + 1))
        return needs

    def advance(self, tokens: int, now: float) -> tuple[list[LiveRequest], int]:
        """Every member produces `tokens` tokens (fewer if it finishes); returns (finished, tokens produced)."""
        start = self.clock
        produced = self.count * tokens
        finished: list[LiveRequest] = []
        for c in range(start + 1, start + tokens + 1):
            members = self._finish_at.pop(c, None)
            if members is not None:
                finished.extend(members)
                produced -= len(members) * (start + tokens - c)
        self.clock = start + tokens
        if self.tick_times is not None:
            self.tick_times.extend([now] * tokens)
        for req in finished:
            self._drop(req, req.finish_clock)
            req.emitted = req.output
        return finished, produced
