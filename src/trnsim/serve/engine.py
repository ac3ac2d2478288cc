"""The event loop: arrivals and step completions in time order (a heap), replicas behind a router.

A replica runs one step at a time. When a step ends, its tokens are handed out and the replica's scheduler
plans the next step at once; an idle replica wakes on the next arrival routed to it. Planning waits until
every event of the same instant is handled, so requests arriving together (a closed loop's clients at
time 0) are seen together and can share a batch. At the end, every
request must have left with all its tokens and every replica must be empty, or the run is a bug
(`check_conservation`).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence

from trnsim.serve.errors import ServeInternalError
from trnsim.serve.request import LiveRequest
from trnsim.serve.router import Router
from trnsim.serve.schedulers.base import ReplicaScheduler
from trnsim.serve.workload import RequestSet

ProgressFn = Callable[[int, int], None]
_ARRIVAL, _STEP_DONE = 0, 1


def run_events(
    requests: RequestSet,
    replicas: Sequence[ReplicaScheduler],
    router: Router,
    progress: ProgressFn | None = None,
) -> list[LiveRequest]:
    """Simulate until every request has finished; returns the requests by id."""
    n = len(requests)
    prompt = requests.prompt_tokens.tolist()
    output = requests.output_tokens.tolist()
    group = requests.prefix_group.tolist()
    prefix = requests.prefix_tokens.tolist()
    live: list[LiveRequest | None] = [None] * n
    busy = [False] * len(replicas)
    closed_loop = requests.concurrency is not None
    if closed_loop:
        assert requests.concurrency is not None
        first = min(requests.concurrency, n)
        heap: list[tuple[float, int, int, int]] = [(0.0, i, _ARRIVAL, i) for i in range(first)]
        next_id = first
    else:
        heap = [(t, i, _ARRIVAL, i) for i, t in enumerate(requests.arrival_s.tolist())]
        heapq.heapify(heap)
        next_id = n
    order = n  # tie-breaker: events at the same time run in the order they were made
    done = 0
    report_every = max(1, n // 200)
    push, pop = heapq.heappush, heapq.heappop
    pending: set[int] = set()  # replicas to plan for once every event at this instant is handled
    while heap:
        now, _, kind, x = pop(heap)
        if kind == _ARRIVAL:
            req = LiveRequest(x, now, prompt[x], output[x], group[x], prefix[x])
            live[x] = req
            r = router.pick(replicas)
            replicas[r].enqueue(req)
        else:
            r = x
            busy[r] = False
            finished = replicas[r].finish_step(now)
            if finished:
                done += len(finished)
                if closed_loop:
                    for _ in finished:  # each client sends its next request right away
                        if next_id < n:
                            push(heap, (now, order, _ARRIVAL, next_id))
                            order += 1
                            next_id += 1
                if progress is not None and (done % report_every < len(finished) or done == n):
                    progress(done, n)
        if not busy[r]:
            pending.add(r)
        if heap and heap[0][0] == now:
            continue  # more happens at this instant (e.g. clients arriving together): plan with all of it
        for r in sorted(pending):
            seconds = replicas[r].plan_step(now)
            if seconds is not None:
                busy[r] = True
                push(heap, (now + seconds, order, _STEP_DONE, r))
                order += 1
        pending.clear()
    if any(req is None for req in live):
        raise ServeInternalError(f"{sum(req is None for req in live)} requests never arrived")
    return live  # type: ignore[return-value]


def check_conservation(live: Sequence[LiveRequest], replicas: Sequence[ReplicaScheduler]) -> None:
    """Every request that entered left with all its tokens, in time order; every replica is empty."""
    problems: list[str] = []
    for req in live:
        if req.emitted != req.output or req.running or math.isnan(req.finish_s):
            problems.append(f"request {req.id} ended with {req.emitted}/{req.output} tokens, finish {req.finish_s}")
        elif not (req.arrival_s <= req.scheduled_s <= req.first_token_s <= req.finish_s):
            problems.append(
                f"request {req.id} times out of order: arrival {req.arrival_s}, scheduled {req.scheduled_s}, "
                f"first token {req.first_token_s}, finish {req.finish_s}"
            )
        if len(problems) >= 5:
            break
    produced = sum(s.tokens_out for s in replicas)
    wanted = sum(req.output for req in live)
    if produced != wanted:
        problems.append(f"steps produced {produced} output tokens, requests wanted {wanted}")
    for s in replicas:
        if s.waiting or s.running or s.pool.count or s.outstanding or s.kv.used_blocks:
            problems.append(
                f"replica {s.index} not empty at the end: {len(s.waiting)} waiting, {s.running} running, "
                f"{s.pool.count} decoding, {s.outstanding} outstanding, {s.kv.used_blocks} KV blocks held"
            )
        s.kv.check()
    if problems:
        raise ServeInternalError("; ".join(problems))
