"""Chunked prefill (Sarathi-Serve style): every step has a token budget shared by decodes and prompt chunks.

A step first gives every decoding request its token(s), then fills the rest of `token_budget` with
prompt chunks: requests already part-way through their prefill first (oldest first), then new ones
from the queue. Long prompts are thus spread over many steps that keep decoding, which bounds the stall a
prompt causes to the time of one budget-sized step. KV blocks are allocated chunk by chunk; a chunk that
needs blocks preempts the newest running request (never an older one), as in vLLM v1.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass

from trnsim.serve.errors import ServeError
from trnsim.serve.request import LiveRequest
from trnsim.serve.schedulers.base import ReplicaContext, ReplicaScheduler, check_positive_int


@dataclass(frozen=True)
class ChunkedPrefill:
    max_batch: int = 256
    token_budget: int = 512  # tokens per step, decode tokens included (Sarathi-Serve's chunk size)
    kv_watermark: float = 0.01
    name = "chunked"

    def __post_init__(self) -> None:
        check_positive_int("ChunkedPrefill", "max_batch", self.max_batch)
        check_positive_int("ChunkedPrefill", "token_budget", self.token_budget)
        if not 0 <= self.kv_watermark < 1:
            raise ServeError(f"ChunkedPrefill: kv_watermark must be in [0, 1), got {self.kv_watermark}")

    def build(self, ctx: ReplicaContext) -> ReplicaScheduler:
        return ChunkedScheduler(ctx, self)


def _priority(req: LiveRequest) -> tuple[float, int]:
    return (req.arrival_s, req.id)


class ChunkedScheduler(ReplicaScheduler):
    def __init__(self, ctx: ReplicaContext, config: ChunkedPrefill) -> None:
        super().__init__(ctx)
        self.max_batch = config.max_batch
        self.token_budget = config.token_budget
        self.watermark_blocks = int(config.kv_watermark * ctx.kv.num_blocks)
        self.prefilling: list[LiveRequest] = []  # admitted, prompt not yet complete; oldest first

    def forget_prefill(self, req: LiveRequest) -> None:
        self.prefilling.remove(req)

    def prefill_done(self, req: LiveRequest) -> None:
        self.prefilling.remove(req)

    def _grow(self, req: LiveRequest, kv_tokens: int) -> bool:
        """KV for `kv_tokens` of a part-prefilled request, preempting newer requests if needed."""
        while not self.kv.ensure(req.id, kv_tokens):
            victim = self.newest_running()
            if victim is None or victim is req:
                return False
            self.preempt(victim)
        return True

    def plan_step(self, now: float) -> float | None:
        preemptions_before = self.preemptions
        per_seq = self.reserve_decode() if self.pool.count else 0
        budget = self.token_budget - self.pool.count * per_seq
        chunks: list[tuple[LiveRequest, int]] = []
        context = 0
        for req in list(self.prefilling):
            if budget <= 0:
                break
            if not req.running:  # preempted by an older request's chunk in this loop
                continue
            chunk = min(req.known - req.computed, budget)
            if not self._grow(req, req.computed + chunk):
                break
            chunks.append((req, chunk))
            budget -= chunk
            context += req.computed + chunk
        # No new admissions in a step that had to preempt (vLLM v1): memory is short, they would thrash.
        while self.waiting and budget > 0 and self.running < self.max_batch and self.preemptions == preemptions_before:
            req = self.waiting[0]
            known = req.prompt + req.emitted
            cached = self.cached_tokens_if_admitted(req)
            chunk = min(known - cached, budget)
            if not self.fits(cached + chunk, req, self.watermark_blocks):
                break
            self.waiting.popleft()
            self.admit(req, cached + chunk, now)
            insort(self.prefilling, req, key=_priority)
            chunks.append((req, chunk))
            budget -= chunk
            context += cached + chunk
        decoders = self.pool.count if per_seq else 0
        if not chunks and not decoders:
            return None
        decode_context = self.pool.kv_tokens + decoders * per_seq if decoders else 0
        return self.start_step(
            now,
            decoders + len(chunks),
            decoders * per_seq + sum(c for _, c in chunks),
            decode_context + context,
            per_seq if decoders else 0,
            chunks,
        )
