"""How a step's tokens land on the experts, and so on the ranks that hold them (expert parallelism).

The router is modelled as what a top-k router does: each token takes the k experts with the highest score,
score_e = log(popularity_e) + g, with g an independent Gumbel(0, 1) draw per token and expert. Top-k of
such scores is a draw of k distinct experts without replacement in proportion to their popularity (the
Gumbel-top-k trick), so per-expert counts have the spread real routing of distinct tokens has, not an even
split. Popularity is Zipf-like, popularity_e ∝ (rank_e + 1)^-skew over experts in a shuffled order:
skew = 0 is a router trained to balance (auxiliary-loss-free balancing, DeepSeek-V3) whose only imbalance
is the sampling of a finite batch; skew > 0 models a router that favours some experts. Draws use a fixed
seed, so an estimate is reproducible.

Experts sit on the ranks in contiguous blocks (rank r holds experts [r E/ep, (r + 1) E/ep), as vLLM and
DeepSpeed place them); a step runs as long as its busiest rank, whose expert rows are what the estimate
prices.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from trnsim.errors import CompileError

SEED = 0  # routing draws are reproducible: the same step shape gets the same busiest rank


@dataclass(frozen=True)
class Routing:
    """Rows each expert receives in one MoE layer of one step (a token routed to k experts is k rows)."""

    counts: tuple[int, ...]  # per expert
    ep: int

    @property
    def experts(self) -> int:
        return len(self.counts)

    @property
    def experts_per_rank(self) -> int:
        return math.ceil(self.experts / self.ep)

    def rank_experts(self, rank: int) -> tuple[int, ...]:
        """Rows of each expert rank `rank` holds (its contiguous block)."""
        e = self.experts_per_rank
        return self.counts[rank * e : (rank + 1) * e]

    @property
    def rank_rows(self) -> tuple[int, ...]:
        return tuple(sum(self.rank_experts(r)) for r in range(self.ep))

    @property
    def busiest_rank(self) -> int:
        rows = self.rank_rows
        return rows.index(max(rows))

    @property
    def imbalance(self) -> float:
        """Busiest rank's rows over the mean rank's (1.0: perfectly even)."""
        rows = self.rank_rows
        mean = sum(rows) / len(rows)
        return max(rows) / mean if mean else 1.0


def check_ep(ep: int, experts: int) -> None:
    if isinstance(ep, bool) or not isinstance(ep, int) or ep < 1:
        raise CompileError(f"ep (expert-parallel ranks) must be an integer >= 1, got {ep!r}")
    if experts < 2:
        raise CompileError(f"ep={ep} spreads a mixture-of-experts model's experts; this model has {experts} expert")
    if ep > experts:
        raise CompileError(f"ep={ep} is more ranks than the model's {experts} experts; use ep <= {experts}")
    if experts % ep:
        divisors = [d for d in range(2, experts + 1) if experts % d == 0]
        raise CompileError(
            f"ep={ep} does not divide the {experts} experts evenly; use one of {', '.join(map(str, divisors[:12]))}"
        )


def popularity(experts: int, skew: float, rng: np.random.Generator) -> np.ndarray:
    """Zipf-like expert popularity (sums to 1), the favoured experts at random positions."""
    if not math.isfinite(skew) or skew < 0:
        raise CompileError(f"routing skew must be a finite number >= 0 (0: a balanced router), got {skew!r}")
    weights = (np.arange(experts) + 1.0) ** -skew
    weights = weights[rng.permutation(experts)]
    return weights / weights.sum()


def route_tokens(tokens: int, experts: int, top_k: int, skew: float = 0.0, seed: int = SEED) -> np.ndarray:
    """[tokens, top_k] distinct expert ids per token, drawn as the top-k of log-popularity + Gumbel scores."""
    if tokens < 1 or not 1 <= top_k <= experts:
        raise CompileError(f"routing needs tokens >= 1 and 1 <= top_k <= experts, got {tokens}, {top_k}, {experts}")
    rng = np.random.default_rng(seed)
    logp = np.log(popularity(experts, skew, rng))
    chosen = np.empty((tokens, top_k), dtype=np.int64)
    chunk = max(1, (1 << 22) // experts)  # bound the score matrix's memory for big steps
    for t0 in range(0, tokens, chunk):
        scores = logp + rng.gumbel(size=(min(chunk, tokens - t0), experts))
        chosen[t0 : t0 + chunk] = np.argpartition(-scores, top_k - 1, axis=1)[:, :top_k]
    return chosen


def routing_of(chosen: np.ndarray, experts: int, ep: int) -> Routing:
    """Per-expert rows of a routing ([tokens, k] expert ids), placed on `ep` ranks."""
    counts = np.bincount(chosen.reshape(-1), minlength=experts)
    return Routing(tuple(int(c) for c in counts), ep)


def sampled_routing(tokens: int, experts: int, top_k: int, ep: int, skew: float = 0.0) -> Routing:
    """The routing of `tokens` tokens (all the EP group's tokens of one step) drawn as the module docstring says."""
    check_ep(ep, experts)
    return routing_of(route_tokens(tokens, experts, top_k, skew), experts, ep)


# While an expert-parallel estimate runs: the rows each of the busiest rank's experts receives. The experts'
# grouped matmul is then launched at that rank's shapes (lowering/moe.py), so the whole model's experts are
# never simulated only to be replaced.
_LOCAL_ROWS: contextvars.ContextVar[tuple[int, ...] | None] = contextvars.ContextVar("trnsim_ep_rows", default=None)


@contextlib.contextmanager
def local_expert_rows(rows: tuple[int, ...]) -> Iterator[None]:
    token = _LOCAL_ROWS.set(rows)
    try:
        yield
    finally:
        _LOCAL_ROWS.reset(token)


def active_local_expert_rows() -> tuple[int, ...] | None:
    """The busiest rank's rows per local expert while an expert-parallel estimate runs, else None."""
    return _LOCAL_ROWS.get()
