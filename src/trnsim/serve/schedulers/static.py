"""Static batching: take up to `max_batch` waiting requests, run them to the end together, repeat.

The batch is padded: its prefill processes every request at the longest prompt, and it keeps all its
slots (and its KV reservation for prompt + output) until the longest output is done. No request joins a
running batch. This is the baseline continuous batching was invented to beat.
"""

from __future__ import annotations

from dataclasses import dataclass

from trnsim.serve.errors import ServeInternalError
from trnsim.serve.request import LiveRequest
from trnsim.serve.schedulers.base import ReplicaContext, ReplicaScheduler, check_positive_int


@dataclass(frozen=True)
class StaticBatching:
    max_batch: int = 8
    name = "static"

    def __post_init__(self) -> None:
        check_positive_int("StaticBatching", "max_batch", self.max_batch)

    def build(self, ctx: ReplicaContext) -> ReplicaScheduler:
        return StaticScheduler(ctx, self)


class StaticScheduler(ReplicaScheduler):
    def __init__(self, ctx: ReplicaContext, config: StaticBatching) -> None:
        super().__init__(ctx)
        self.max_batch = config.max_batch
        self._batch_size = 0
        self._context = 0  # padded KV length of the batch's sequences

    def plan_step(self, now: float) -> float | None:
        if self.pool.count:
            tokens = self.reserve_decode(grow=False)
            self._context += tokens
            b = self._batch_size
            return self.start_step(now, b, b * tokens, b * self._context, tokens, [])
        batch: list[LiveRequest] = []
        while self.waiting and len(batch) < self.max_batch:
            req = self.waiting[0]
            total = req.prompt + req.output  # reserved up front for the whole output
            if not self.kv.can_allocate(total, self.prefix_keys(req)):
                break
            self.waiting.popleft()
            self.admit(req, total, now)
            batch.append(req)
        if not batch:
            if self.waiting:
                raise ServeInternalError("static batching: an idle replica cannot fit its oldest waiting request")
            return None
        b = len(batch)
        longest = max(r.known - r.computed for r in batch)
        self._batch_size = b
        self._context = max(r.known for r in batch)
        return self.start_step(now, b, b * longest, b * self._context, 0, [(r, r.known - r.computed) for r in batch])
