"""Step parts of an expert-parallel replica: a mixture-of-experts model served on `ep` groups of `tp` ranks,
attention data-parallel across groups (each runs its own sequences with every non-expert weight, tensor-parallel
over its tp ranks; tp = 1: one rank, all heads) and the routed experts split over the groups, dispatch and combine
all-to-alls over the instance topology (compiler/expert_parallel.py, expert_parallel_comm.py).

The scheduler batches for the whole replica. Each sequence runs whole in one group (data-parallel attention),
so a step of B sequences and N new tokens puts b = ceil(B / ep) sequences on its busiest group, and this group
is taken to hold the step's prompt tokens too: n = b + (N - B) tokens (exact for decode steps and for a step
with one prompt among decodes, the common continuous-batching steps; pessimistic when several prompts share a
step, as they would spread over the groups). The routed experts see the whole replica's N tokens either way:

    step(B, N, C) = overhead + rank(n) + experts(N) + lm_head(b) - lm_head(1)
                    + layers x [decode(b, C) + prefill(n - b, C)]

Both parts come from `ep_estimate` of the model with t tokens on every group (everything but attention),
at the grid's new-token points t and linear between them: experts(N) is its experts' grouped matmuls (the
busiest group's rows under the sampled routing of ep x t tokens) and the layout's collectives (dispatch/combine
all-to-alls; with tp > 1 the tp all-gather / reduce-scatter of the expert rows), at t = N / ep; rank(n) is the
rest (the rank's own projections, norms, router, routing gathers, tensor-parallel all-reduces), at t = n. The
attention parts are StepComponents' own at the rank's shapes (its tp slice of the heads).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from trnsim.compiler.dtype_mx import GROUPED
from trnsim.errors import TrnsimWarning
from trnsim.hw.spec import HardwareSpec
from trnsim.serve.errors import ServeError
from trnsim.serve.step_components import SDPA, StepComponents


class EPStepComponents(StepComponents):
    """StepComponents of a replica of `ep` expert-parallel groups of `tp` ranks (see the module docstring)."""

    def __init__(
        self,
        model: str,
        target: str | HardwareSpec,
        ep: int,
        instance: str | None,
        dtype: str,
        weight_format: str = "bf16",
        weight_layout: str | None = None,
        tp: int = 1,
    ) -> None:
        from trnsim.compiler.gpu_estimate import is_gpu_target

        if isinstance(ep, bool) or not isinstance(ep, int) or ep < 2:
            raise ServeError(f"ep (expert-parallel ranks) must be an integer >= 2, got {ep!r}")
        if is_gpu_target(target):
            raise ServeError("expert-parallel serving is priced on Trainium-class targets (trn1, trn2, trn3, inf2)")
        super().__init__(model, target, tp, None, dtype, weight_format, weight_layout)
        if self.weight_layout != "pytorch":
            raise ServeError("expert-parallel serving prices the PyTorch weight layout only (no serving stack yet)")
        self.ep = ep
        self.ep_instance = instance
        self.dispatch_bytes: dict[int, int] = {}  # per rank and MoE layer, by tokens per rank
        self._split: dict[int, tuple[float, float]] = {}  # tokens per rank -> (rank part, experts part) s

    def rank_shape(self, batch: int, new_tokens: int) -> tuple[int, int]:
        """(sequences, new tokens) of the step's busiest group (see the module docstring)."""
        b = math.ceil(batch / self.ep)
        return b, b + max(0, new_tokens - batch)

    def cache_key(self) -> str:
        return f"{super().cache_key()} ep={self.ep} ep_instance={self.ep_instance} v=3"

    def dense_s(self, new_tokens: int) -> float:
        """Everything but attention with `new_tokens` tokens on every rank: the rank's part plus the experts'."""
        rank, experts = self._parts_at(new_tokens)
        return rank + experts

    def _parts_at(self, tokens: int) -> tuple[float, float]:
        """(rank part, experts part) in seconds of an ep_estimate with `tokens` tokens on every rank."""
        hit = self._split.get(tokens)
        if hit is None and self.dense_store is not None:
            known = self.dense_store.load(self.dense_key())
            if (0, tokens, 0.0) in known and (1, tokens, 0.0) in known:
                hit = known[(0, tokens, 0.0)], known[(1, tokens, 0.0)]
        if hit is None:
            records = [r for r in self.rank_profile(tokens).records if r.kind != "host" and r.op != SDPA]
            # the experts' grouped matmuls (bf16 or MX) and the layout's collectives (nodes "ep_...")
            experts = [r.kernel.startswith(GROUPED) or r.node.startswith("ep_") for r in records]
            rank_s = 1e-6 * sum(r.total_device_us for r, e in zip(records, experts, strict=True) if not e)
            hit = rank_s, 1e-6 * sum(r.total_device_us for r, e in zip(records, experts, strict=True) if e)
            if self.dense_store is not None:
                self.dense_store.save(self.dense_key(), [((0, tokens, 0.0), hit[0]), ((1, tokens, 0.0), hit[1])])
        self._split[tokens] = hit
        return hit

    def _on_points(self, tokens: float, part: int) -> float:
        """A part at `tokens` per rank: exact at an estimated point, else linear between the nearest two (the
        grid's new-token points, estimated first); estimated directly where none brackets it."""
        points = sorted(self._split)
        if tokens in self._split or not points or not points[0] <= tokens <= points[-1]:
            return self._parts_at(max(1, math.ceil(tokens)))[part]
        hi = next(p for p in points if p >= tokens)
        lo = max(p for p in points if p <= tokens)
        a, b = self._split[lo][part], self._split[hi][part]
        return a if hi == lo else a + (b - a) * (tokens - lo) / (hi - lo)

    def rank_profile(self, new_tokens: int) -> Any:
        """The expert-parallel estimate with `new_tokens` tokens on every rank (logits of the last token only)."""
        import torch

        from trnsim.compiler.expert_parallel import ep_estimate

        ids = torch.zeros(1, new_tokens, dtype=torch.long, device="meta")
        fmt = {} if self.format is None else {"dtype": self.format.name}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TrnsimWarning)  # host-side mask ops: left out of device time anyway
            result = ep_estimate(
                self.net,
                (ids,),
                {"logits_to_keep": 1},
                ep=self.ep,
                tp=self.tp,
                target=self.spec if self.spec is not None else "trn2",
                instance=self.ep_instance,
                label=self.model_name,
                **fmt,
            )
        self.estimate_calls += 1
        self.dispatch_bytes[new_tokens] = result.dispatch_bytes
        return result.profile

    def step_time_s(self, batch: int, new_tokens: int, context: float) -> float:
        c = max(1, round(context))
        b, n = self.rank_shape(batch, new_tokens)
        attention = self.decode_attention_s(b, c) + self.prefill_attention_s(n - b, c)
        logits = self.lm_head_s(b) - self.lm_head_s(1)
        dense = self._on_points(n, 0) + self._on_points(new_tokens / self.ep, 1)
        return self.overhead_s + dense + logits + self.shape.layers * attention
