"""Continuous batching (vLLM-style, as in vLLM v0): requests join and leave the running batch every step.

Each step is either a prefill step - as many waiting requests as KV blocks, `max_batch` and
`max_batched_tokens` allow, FCFS, each allocated KV for its whole prompt - or, when none can be admitted,
a decode step of every running request. Prefill steps take priority, so a long prompt stalls all decoding
for its whole prefill (the TPOT spikes chunked prefill removes). When decoding runs out of blocks, the
newest request is preempted and recomputed later.
"""

from __future__ import annotations

from dataclasses import dataclass

from trnsim.serve.errors import ServeError
from trnsim.serve.request import LiveRequest
from trnsim.serve.schedulers.base import ReplicaContext, ReplicaScheduler, check_positive_int


@dataclass(frozen=True)
class ContinuousBatching:
    max_batch: int = 256  # running requests (vLLM max_num_seqs)
    max_batched_tokens: int = 8192  # prompt tokens per prefill step; a longer prompt still runs, alone
    kv_watermark: float = 0.01  # vLLM default: admit only while 1% of the blocks stay free
    name = "continuous"

    def __post_init__(self) -> None:
        check_positive_int("ContinuousBatching", "max_batch", self.max_batch)
        check_positive_int("ContinuousBatching", "max_batched_tokens", self.max_batched_tokens)
        if not 0 <= self.kv_watermark < 1:
            raise ServeError(f"ContinuousBatching: kv_watermark must be in [0, 1), got {self.kv_watermark}")

    def build(self, ctx: ReplicaContext) -> ReplicaScheduler:
        return ContinuousScheduler(ctx, self)


class ContinuousScheduler(ReplicaScheduler):
    def __init__(self, ctx: ReplicaContext, config: ContinuousBatching) -> None:
        super().__init__(ctx)
        self.max_batch = config.max_batch
        self.max_batched_tokens = config.max_batched_tokens
        self.watermark_blocks = int(config.kv_watermark * ctx.kv.num_blocks)

    def plan_step(self, now: float) -> float | None:
        admitted: list[tuple[LiveRequest, int]] = []
        tokens = 0
        context = 0
        while self.waiting and self.running < self.max_batch:
            req = self.waiting[0]
            known = req.prompt + req.emitted
            compute = known - self.cached_tokens_if_admitted(req)
            if admitted and tokens + compute > self.max_batched_tokens:
                break
            if not self.fits(known, req, self.watermark_blocks):
                break
            self.waiting.popleft()
            self.admit(req, known, now)
            admitted.append((req, compute))
            tokens += compute
            context += known
        if admitted:
            return self.start_step(now, len(admitted), tokens, context, 0, admitted, separate_prompts=True)
        if not self.pool.count:
            return None
        per_seq = self.reserve_decode()
        n = self.pool.count  # after any preemption
        return self.start_step(now, n, n * per_seq, self.pool.kv_tokens + n * per_seq, per_seq, [])
