"""What every scheduler shares: a replica's queue, KV cache, decode pool, preemption and step bookkeeping.

A scheduler subclass decides only what the next step contains (`plan_step`); this base admits requests
into the KV cache, preempts the newest request when blocks run out (vLLM's recompute preemption: its
blocks are freed and it re-queues at the front, keeping the tokens it already produced), prices the step,
and at the step's end hands out tokens, first-token times and finished requests.
"""

from __future__ import annotations

import heapq
import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from trnsim.serve.decode_pool import DecodePool
from trnsim.serve.errors import ServeError, ServeInternalError
from trnsim.serve.kv_cache import PagedKVCache
from trnsim.serve.request import LiveRequest
from trnsim.serve.schedulers.speculative import AcceptanceSampler, SpeculativeDecoding
from trnsim.serve.step_cost import StepCost


@dataclass(frozen=True)
class ReplicaContext:
    """What a scheduler instance gets for one replica."""

    index: int
    kv: PagedKVCache
    step_cost: StepCost
    speculative: SpeculativeDecoding | None
    rng: np.random.Generator
    record_token_times: bool = False
    record_steps: bool = False


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One model step, when steps are recorded."""

    replica: int
    start_s: float
    end_s: float
    batch: int
    new_tokens: int
    context: float
    decode_seqs: int
    tokens_per_seq: int  # tokens each decoding sequence gains (k+1 at most with speculative decoding)
    prefill_seqs: int
    prefill_tokens: int
    queue_depth: int = 0  # requests waiting on this replica when the step started
    kv_used_blocks: int = 0  # KV blocks held when the step started


def check_positive_int(owner: str, name: str, value: int) -> None:
    if int(value) != value or value < 1:
        raise ServeError(f"{owner}: {name} must be a whole number >= 1, got {value!r}")


class ReplicaScheduler(ABC):
    def __init__(self, ctx: ReplicaContext) -> None:
        self.index = ctx.index
        self.kv = ctx.kv
        self.step_cost = ctx.step_cost
        self.speculative = ctx.speculative
        self._sampler = AcceptanceSampler(ctx.speculative, ctx.rng) if ctx.speculative is not None else None
        self.record_token_times = ctx.record_token_times
        self.pool = DecodePool(ctx.kv.block_tokens, ctx.record_token_times)
        self.waiting: deque[LiveRequest] = deque()
        self.outstanding = 0  # requests routed here and not finished
        self.running = 0  # requests holding KV blocks
        self.busy_s = 0.0
        self.steps = 0
        self.tokens_out = 0
        self.preemptions = 0
        self.step_log: list[StepRecord] | None = [] if ctx.record_steps else None
        self._newest: list[tuple[float, int, int, LiveRequest]] = []  # max-heap on (arrival, id) of running
        self._step_tokens_per_seq = 0  # decode part of the step in flight (0: none)
        self._step_prefills: list[tuple[LiveRequest, int]] = []  # (request, prefill tokens this step)

    # --- queue and admission -------------------------------------------------------------------------------
    def enqueue(self, req: LiveRequest) -> None:
        req.replica = self.index
        if self.record_token_times and req.token_log is None:
            req.token_log = []
        self.waiting.append(req)
        self.outstanding += 1

    def prefix_keys(self, req: LiveRequest) -> tuple[Hashable, ...]:
        """Keys of the request's full shared-prefix blocks: (prefix group, block index) names their content."""
        if not self.kv.prefix_caching or req.prefix_group < 0:
            return ()
        if not req.prefix_keys:
            req.prefix_keys = tuple((req.prefix_group, i) for i in range(req.prefix_tokens // self.kv.block_tokens))
        return req.prefix_keys

    def fits(self, kv_tokens: int, req: LiveRequest, watermark_blocks: int) -> bool:
        """Whether admitting the request with `kv_tokens` tokens leaves `watermark_blocks` free (vLLM's
        watermark, against admitting what the next decode steps would immediately preempt). An idle replica
        admits anything that fits at all, so a request as large as the whole cache still runs."""
        keep = watermark_blocks if self.running else 0
        return self.kv.can_allocate(kv_tokens, self.prefix_keys(req), keep)

    def cached_tokens_if_admitted(self, req: LiveRequest) -> int:
        """Prompt tokens a prefix-cache hit would spare (at least one token is always computed)."""
        hits = self.kv.cached_prefix_blocks(self.prefix_keys(req))
        return min(hits * self.kv.block_tokens, req.prompt + req.emitted - 1)

    def admit(self, req: LiveRequest, kv_tokens: int, now: float) -> None:
        """Give a waiting request KV blocks for its first `kv_tokens` tokens (caller checked can_allocate)."""
        req.known = req.prompt + req.emitted  # after a preemption, produced tokens are recomputed too
        hits = self.kv.allocate(req.id, kv_tokens, self.prefix_keys(req))
        cached = min(hits * self.kv.block_tokens, req.known - 1)
        req.computed = cached
        req.cached_tokens += cached
        req.running = True
        req.epoch += 1
        heapq.heappush(self._newest, (-req.arrival_s, -req.id, req.epoch, req))
        self.running += 1
        if math.isnan(req.scheduled_s):
            req.scheduled_s = now

    # --- preemption ----------------------------------------------------------------------------------------
    def newest_running(self) -> LiveRequest | None:
        heap = self._newest
        while heap:
            _, _, epoch, req = heap[0]
            if req.running and req.epoch == epoch:
                return req
            heapq.heappop(heap)
        return None

    def preempt(self, req: LiveRequest) -> None:
        """Recompute preemption: free the request's KV and put it back at the head of the queue."""
        if self._in_pool(req):
            self.pool.remove(req)
        else:
            self.forget_prefill(req)
        self.kv.free(req.id)
        req.running = False
        req.computed = 0
        self.running -= 1
        req.preemptions += 1
        self.preemptions += 1
        self.waiting.appendleft(req)

    def _in_pool(self, req: LiveRequest) -> bool:
        # A running request whose prefill is complete is in the pool (prefill adds it at the step's end).
        return req.computed >= req.known

    def forget_prefill(self, req: LiveRequest) -> None:  # noqa: B027 (a hook; most schedulers need nothing)
        """Hook: drop a preempted request from the scheduler's own prefill bookkeeping."""

    def reserve_decode(self, grow: bool = True) -> int:
        """Tokens per decoding sequence for the next step, with KV blocks for them (preempting if needed).
        grow=False: the requests reserved their whole length up front (static batching)."""
        tokens = self._sampler.draw() if self._sampler is not None else 1
        if not grow:
            return tokens
        needs = self.pool.growth(tokens)
        while len(needs) > self.kv.free_blocks:  # each need is exactly one new block
            victim = self.newest_running()
            if victim is None:
                raise ServeInternalError("decode needs KV blocks but no running request can be preempted")
            self.preempt(victim)
            needs = self.pool.growth(tokens)
        for req, kv_tokens in needs:
            if not self.kv.ensure(req.id, kv_tokens):
                raise ServeInternalError(f"request {req.id} could not grow its KV after the check")
        return tokens

    # --- steps ---------------------------------------------------------------------------------------------
    @abstractmethod
    def plan_step(self, now: float) -> float | None:
        """Choose the next step's work; return its duration in seconds, or None when there is nothing to do."""

    def start_step(
        self,
        now: float,
        batch: int,
        new_tokens: int,
        context_sum: float,
        tokens_per_seq: int,
        prefills: list[tuple[LiveRequest, int]],
        separate_prompts: bool = False,
    ) -> float:
        """Price the step (batch, new_tokens, mean context) and remember its work for `finish_step`.
        separate_prompts: a prefill-only step whose prompts a serving stack pads each to its own bucket (the step
        cost's `prefill_step_time_s`, serve/serving_stack.py), rather than to their mean."""
        context = context_sum / batch
        decode_seqs = self.pool.count if tokens_per_seq else 0
        per_prompt = getattr(self.step_cost, "prefill_step_time_s", None)
        if self.speculative is not None:
            prefill_tokens = new_tokens - decode_seqs * tokens_per_seq
            seconds = self.speculative.step_time_s(self.step_cost, batch, decode_seqs, prefill_tokens, context)
        elif separate_prompts and per_prompt is not None and prefills and not tokens_per_seq:
            seconds = per_prompt([chunk for _, chunk in prefills], [req.known for req, _ in prefills])
        else:
            seconds = self.step_cost.step_time_s(batch, new_tokens, context)
        if not seconds > 0 or seconds == math.inf:
            raise ServeError(
                f"step cost returned {seconds!r} s for (batch={batch}, new_tokens={new_tokens}, "
                f"context={context:.1f}); a step must take a finite time > 0 (check the step-latency grid covers it)"
            )
        self._step_tokens_per_seq = tokens_per_seq
        self._step_prefills = prefills
        self.busy_s += seconds
        self.steps += 1
        if self.step_log is not None:
            self.step_log.append(
                StepRecord(
                    self.index,
                    now,
                    now + seconds,
                    batch,
                    new_tokens,
                    context,
                    decode_seqs,
                    tokens_per_seq,
                    len(prefills),
                    sum(chunk for _, chunk in prefills),
                    len(self.waiting),
                    self.kv.used_blocks,
                )
            )
        return seconds

    def finish_step(self, now: float) -> list[LiveRequest]:
        """Hand out the step's tokens at time `now`; returns the requests that finished."""
        finished: list[LiveRequest] = []
        if self._step_tokens_per_seq:
            done, produced = self.pool.advance(self._step_tokens_per_seq, now)
            self.tokens_out += produced
            for req in done:
                self.retire(req, now)
            finished.extend(done)
        for req, chunk in self._step_prefills:
            req.computed += chunk
            if req.computed < req.known:
                self.kv.commit(req.id, req.computed, req.prefix_keys)
                continue
            # Prefill complete: its last position yields the next token.
            self.kv.commit(req.id, req.known, req.prefix_keys)
            self.prefill_done(req)
            req.emitted += 1
            self.tokens_out += 1
            if req.emitted == 1:
                req.first_token_s = now
            if req.token_log is not None:
                req.token_log.append(now)
            if req.emitted >= req.output:
                self.retire(req, now)
                finished.append(req)
            else:
                req.kv_start = req.known
                self.on_decode_start(req)
        self._step_tokens_per_seq = 0
        self._step_prefills = []
        return finished

    def prefill_done(self, req: LiveRequest) -> None:  # noqa: B027 (a hook)
        """Hook: the request's prefill completed this step."""

    def on_decode_start(self, req: LiveRequest) -> None:
        self.pool.add(req)

    def retire(self, req: LiveRequest, now: float) -> None:
        self.kv.free(req.id)
        req.running = False
        self.running -= 1
        req.finish_s = now
        self.outstanding -= 1
        if len(self._newest) > 4 * self.running + 64:  # drop stale preemption-heap entries now and then
            self._newest = [e for e in self._newest if e[3].running and e[3].epoch == e[2]]
            heapq.heapify(self._newest)
