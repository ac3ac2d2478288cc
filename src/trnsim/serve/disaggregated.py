"""Disaggregated prefill/decode (DistServe, Splitwise, vLLM's disaggregated prefill): two pools, one KV hand-off.

A *prefill pool* (its own tp group of cores) runs only prompts: FCFS batches up to `prefill_max_batched_tokens`,
each request holding KV blocks of the pool for its prompt. When its prefill step ends the request has its first
token and its prompt's KV cache, which moves to the *decode pool* (another tp group) over the instance's links
(`KVLink`): the transfer starts once the decode pool has admitted it, transfers share the link one after another
(FIFO), and the first token reaches the client when its KV has landed (as vLLM's disaggregated proxy streams the
decode instance's output), so TTFT = queueing + prefill + transfer. The decode pool runs decode-only steps of
every request it holds; prefill tokens never enter them, which is the point: no prompt stalls decoding.

The decode pool admits a request only when KV blocks for its whole length (prompt + output) stay free
(TensorRT-LLM's GUARANTEED_NO_EVICT policy), so it never preempts; the prefill pool frees a request's blocks
when its transfer ends. Step times come from each pool's own StepCost (the same estimate the other schedulers
use); the pools run concurrently. Not modelled: speculative decoding, prefix caching, several replicas per pool.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque

import numpy as np

from trnsim.serve.decode_pool import DecodePool
from trnsim.serve.disaggregated_types import Disaggregated, DisaggregatedResult, KVLink
from trnsim.serve.errors import ModelDoesNotFitError, ServeError, ServeInternalError
from trnsim.serve.kv_cache import PagedKVCache
from trnsim.serve.metrics import SLO, compute_metrics
from trnsim.serve.model import DEFAULT_BLOCK_TOKENS, DEFAULT_RESERVE_FRACTION, Replica, ServedModel, kv_cache_blocks
from trnsim.serve.request import LiveRequest
from trnsim.serve.schedulers.base import StepRecord
from trnsim.serve.workload import Workload

PREFILL_POOL, DECODE_POOL = 0, 1  # StepRecord.replica of each pool's steps
_ARRIVAL, _PREFILL_DONE, _TRANSFER_DONE, _DECODE_DONE = 0, 1, 2, 3


def _kv_blocks(model: ServedModel, replica: Replica, longest: int, block_tokens: int, reserve: float, pool: str) -> int:
    blocks = kv_cache_blocks(model, replica, block_tokens, reserve)
    if -(-longest // block_tokens) > blocks:
        raise ModelDoesNotFitError(
            f"the {pool} pool ({replica.name or 'unnamed'}) holds {blocks * block_tokens} tokens of KV cache but a "
            f"request needs {longest}; give the {pool} pool more cores or shorten the requests"
        )
    return blocks


def simulate_disaggregated(
    model: ServedModel,
    prefill: Replica,
    decode: Replica,
    workload: Workload,
    link: KVLink,
    config: Disaggregated | None = None,
    *,
    decode_model: ServedModel | None = None,
    slo: SLO | None = None,
    kv_block_tokens: int = DEFAULT_BLOCK_TOKENS,
    kv_reserve_fraction: float = DEFAULT_RESERVE_FRACTION,
    record_steps: bool = False,
) -> DisaggregatedResult:
    """Serve `workload` with a prefill pool and a decode pool joined by `link`.

    model: as the prefill pool holds it (its KV bytes per token size the transfer); decode_model: as the decode
    pool holds it (tensor parallelism may replicate KV heads differently), default `model`."""
    cfg = config or Disaggregated()
    if not isinstance(cfg, Disaggregated):
        raise ServeError(f"config must be a Disaggregated, got {type(cfg).__name__}")
    dmodel = decode_model or model
    requests = workload.generate()
    prompt = requests.prompt_tokens.tolist()
    output = requests.output_tokens.tolist()
    longest_prompt = max(prompt)
    longest = max(p + o for p, o in zip(prompt, output))
    pkv = PagedKVCache(
        _kv_blocks(model, prefill, longest_prompt, kv_block_tokens, kv_reserve_fraction, "prefill"), kv_block_tokens
    )
    dkv = PagedKVCache(
        _kv_blocks(dmodel, decode, longest, kv_block_tokens, kv_reserve_fraction, "decode"), kv_block_tokens
    )
    n = len(requests)
    sim = _Run(cfg, prefill, decode, link, pkv, dkv, model.kv_bytes_per_token, record_steps)
    live = sim.run(requests.arrival_s.tolist(), prompt, output, requests.concurrency)
    sim.check(live)

    def column(attr: str) -> np.ndarray:
        return np.array([getattr(r, attr) for r in live], dtype=float)

    arrival, first, finish = column("arrival_s"), column("first_token_s"), column("finish_s")
    busy = np.array([sim.busy[0], sim.busy[1]])
    metrics = compute_metrics(
        arrival,
        first,
        finish,
        requests.prompt_tokens,
        requests.output_tokens,
        busy,
        [prefill.price_per_hour, decode.price_per_hour],
        [prefill.power_w, decode.power_w],
        0,
        slo,
    )
    return DisaggregatedResult(
        model=model,
        replicas=[prefill, decode],
        scheduler=cfg.name,
        arrival_s=arrival,
        scheduled_s=column("scheduled_s"),
        first_token_s=first,
        finish_s=finish,
        prompt_tokens=requests.prompt_tokens,
        output_tokens=requests.output_tokens,
        replica=np.full(n, DECODE_POOL, dtype=np.int64),
        preemptions=np.zeros(n, dtype=np.int64),
        cached_tokens=np.zeros(n, dtype=np.int64),
        busy_s=busy,
        steps=np.array(sim.steps),
        kv_blocks=np.array([pkv.num_blocks, dkv.num_blocks]),
        token_times=None,
        step_log=sim.step_log,
        slo=slo,
        metrics=metrics,
        prefill_end_s=np.array(sim.prefill_end),
        transfer_start_s=np.array(sim.transfer_start),
        transfer_end_s=np.array(sim.transfer_end),
        transfer_bytes=np.array(prompt, dtype=float) * model.kv_bytes_per_token,
    )


class _Run:
    """The event loop of one disaggregated run (arrivals, prefill steps, transfers, decode steps)."""

    def __init__(
        self,
        cfg: Disaggregated,
        prefill: Replica,
        decode: Replica,
        link: KVLink,
        pkv: PagedKVCache,
        dkv: PagedKVCache,
        kv_bytes_per_token: float,
        record_steps: bool,
    ) -> None:
        self.cfg, self.prefill, self.decode, self.link = cfg, prefill, decode, link
        self.pkv, self.dkv, self.kv_bytes_per_token = pkv, dkv, kv_bytes_per_token
        self.waiting: deque[LiveRequest] = deque()  # for the prefill pool
        self.handoff: deque[LiveRequest] = deque()  # prefilled, waiting for the decode pool to admit them
        self.prefill_batch: list[LiveRequest] = []  # the prefill step in flight
        self.pool = DecodePool(dkv.block_tokens)
        self.landed: list[LiveRequest] = []  # KV arrived, waiting for the decode step in flight to end
        self.decode_busy = False
        self.committed = 0  # decode blocks promised to admitted requests (their whole length)
        self.decoding = 0  # admitted to the decode pool (transferring or decoding)
        self.link_free_s = 0.0
        self.busy = [0.0, 0.0]
        self.steps = [0, 0]
        self.tokens_out = 0
        self.step_log: list[StepRecord] | None = [] if record_steps else None
        self.transfer_start: list[float] = []
        self.transfer_end: list[float] = []
        self.prefill_end: list[float] = []
        self.heap: list[tuple[float, int, int, int]] = []
        self.order = 0
        self.live: list[LiveRequest] = []

    def push(self, t: float, kind: int, x: int) -> None:
        heapq.heappush(self.heap, (t, self.order, kind, x))
        self.order += 1

    def run(
        self, arrivals: list[float], prompt: list[int], output: list[int], concurrency: int | None
    ) -> list[LiveRequest]:
        n = len(prompt)
        self.live = [LiveRequest(i, 0.0, prompt[i], output[i], -1, 0) for i in range(n)]
        self.transfer_start = [math.nan] * n
        self.transfer_end = [math.nan] * n
        self.prefill_end = [math.nan] * n
        next_id = n
        if concurrency is not None:  # closed loop: each client sends its next request when one finishes
            next_id = min(concurrency, n)
            for i in range(next_id):
                self.push(0.0, _ARRIVAL, i)
        else:
            for i, t in enumerate(arrivals):
                self.push(t, _ARRIVAL, i)
        while self.heap:
            now, _, kind, x = heapq.heappop(self.heap)
            finished = 0
            if kind == _ARRIVAL:
                req = self.live[x]
                req.arrival_s = now
                self.waiting.append(req)
            elif kind == _PREFILL_DONE:
                self._prefill_done(now)
            elif kind == _TRANSFER_DONE:
                finished = self._transfer_done(self.live[x], now)
            else:
                finished = self._decode_done(now)
            for _ in range(finished if concurrency is not None else 0):
                if next_id < n:
                    self.push(now, _ARRIVAL, next_id)
                    next_id += 1
            if self.heap and self.heap[0][0] == now:
                continue  # plan once every event of this instant is in
            self._admit_to_decode(now)
            if not self.prefill_batch:
                self._plan_prefill(now)
            if not self.decode_busy:
                self._plan_decode(now)
        return self.live

    # --- prefill pool --------------------------------------------------------------------------------------
    def _plan_prefill(self, now: float) -> None:
        batch: list[LiveRequest] = []
        tokens = 0
        while self.waiting and len(batch) < self.cfg.prefill_max_batch:
            req = self.waiting[0]
            if batch and tokens + req.prompt > self.cfg.prefill_max_batched_tokens:
                break
            if not self.pkv.can_allocate(req.prompt):
                break  # blocks come back as transfers finish
            self.waiting.popleft()
            self.pkv.allocate(req.id, req.prompt)
            req.scheduled_s = now
            req.known = req.prompt
            batch.append(req)
            tokens += req.prompt
        if batch:
            seconds = self._price(self.prefill, PREFILL_POOL, now, len(batch), tokens, tokens / len(batch))
            self.prefill_batch = batch
            self.push(now + seconds, _PREFILL_DONE, PREFILL_POOL)

    def _prefill_done(self, now: float) -> None:
        for req in self.prefill_batch:
            req.computed = req.prompt
            self.pkv.commit(req.id, req.prompt, ())
            self.prefill_end[req.id] = now
            self.handoff.append(req)
        self.prefill_batch = []

    # --- hand-off ------------------------------------------------------------------------------------------
    def _admit_to_decode(self, now: float) -> None:
        """Move prefilled requests (FCFS) whose whole length fits the decode pool's unpromised blocks."""
        while self.handoff and self.decoding < self.cfg.decode_max_batch:
            req = self.handoff[0]
            need = self.dkv.blocks_for(req.prompt + req.output - 1)  # the last token needs no KV
            if self.committed + need > self.dkv.num_blocks:
                return
            self.handoff.popleft()
            self.committed += need
            self.decoding += 1
            self.dkv.allocate(req.id, req.prompt)
            start = max(now, self.link_free_s)
            end = start + self.link.transfer_s(req.prompt * self.kv_bytes_per_token)
            self.link_free_s = end
            self.transfer_start[req.id] = start
            self.transfer_end[req.id] = end
            self.push(end, _TRANSFER_DONE, req.id)

    def _transfer_done(self, req: LiveRequest, now: float) -> int:
        self.pkv.free(req.id)
        self.dkv.commit(req.id, req.prompt, ())
        req.emitted = 1  # the prefill's token, delivered with the hand-off
        req.first_token_s = now
        self.tokens_out += 1
        if req.emitted >= req.output:
            self._retire(req, now)
            return 1
        req.kv_start = req.prompt
        self.landed.append(req)  # joins the decode batch at the next step, not the one in flight
        return 0

    # --- decode pool ---------------------------------------------------------------------------------------
    def _plan_decode(self, now: float) -> None:
        for req in self.landed:
            self.pool.add(req)
        self.landed.clear()
        n = self.pool.count
        if not n:
            return
        for req, kv_tokens in self.pool.growth(1):
            if not self.dkv.ensure(req.id, kv_tokens):
                raise ServeInternalError(f"request {req.id} outgrew the decode blocks promised to it")
        seconds = self._price(self.decode, DECODE_POOL, now, n, n, (self.pool.kv_tokens + n) / n)
        self.decode_busy = True
        self.push(now + seconds, _DECODE_DONE, DECODE_POOL)

    def _decode_done(self, now: float) -> int:
        self.decode_busy = False
        done, produced = self.pool.advance(1, now)
        self.tokens_out += produced
        for req in done:
            self._retire(req, now)
        return len(done)

    def _retire(self, req: LiveRequest, now: float) -> None:
        self.dkv.free(req.id)
        self.committed -= self.dkv.blocks_for(req.prompt + req.output - 1)
        self.decoding -= 1
        req.finish_s = now

    # --- both ----------------------------------------------------------------------------------------------
    def _price(self, replica: Replica, pool: int, now: float, batch: int, new_tokens: int, context: float) -> float:
        seconds = replica.step_cost.step_time_s(batch, new_tokens, context)
        if not (seconds > 0 and seconds < math.inf):
            raise ServeError(
                f"the {('prefill', 'decode')[pool]} pool's step cost returned {seconds!r} s for (batch={batch}, "
                f"new_tokens={new_tokens}, context={context:.1f}); a step must take a finite time > 0"
            )
        self.busy[pool] += seconds
        self.steps[pool] += 1
        if self.step_log is not None:
            decoding = pool == DECODE_POOL
            self.step_log.append(
                StepRecord(
                    pool,
                    now,
                    now + seconds,
                    batch,
                    new_tokens,
                    context,
                    batch if decoding else 0,
                    1 if decoding else 0,
                    0 if decoding else batch,
                    0 if decoding else new_tokens,
                    len(self.waiting) if not decoding else len(self.handoff),
                    (self.dkv if decoding else self.pkv).used_blocks,
                )
            )
        return seconds

    def check(self, live: list[LiveRequest]) -> None:
        """Every request left with all its tokens, in time order; both pools and the link are empty."""
        problems: list[str] = []
        for req in live:
            rid = req.id
            times = [req.arrival_s, req.scheduled_s, self.prefill_end[rid], self.transfer_start[rid]]
            times += [self.transfer_end[rid], req.first_token_s, req.finish_s]
            if req.emitted != req.output or any(math.isnan(t) for t in times):
                problems.append(f"request {req.id} ended with {req.emitted}/{req.output} tokens")
            elif any(a > b for a, b in itertools.pairwise(times)):
                problems.append(f"request {req.id} times out of order: {times}")
            if len(problems) >= 5:
                break
        wanted = sum(r.output for r in live)
        if self.tokens_out != wanted:
            problems.append(f"the pools produced {self.tokens_out} output tokens, requests wanted {wanted}")
        if self.waiting or self.handoff or self.landed or self.pool.count or self.decoding or self.committed:
            problems.append("a pool is not empty at the end")
        if self.pkv.used_blocks or self.dkv.used_blocks:
            problems.append(f"KV blocks still held: prefill {self.pkv.used_blocks}, decode {self.dkv.used_blocks}")
        self.pkv.check()
        self.dkv.check()
        if problems:
            raise ServeInternalError("; ".join(problems))


__all__ = [
    "DECODE_POOL",
    "PREFILL_POOL",
    "Disaggregated",
    "DisaggregatedResult",
    "KVLink",
    "simulate_disaggregated",
]
