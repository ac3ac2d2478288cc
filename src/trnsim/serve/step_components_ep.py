"""Step parts of an expert-parallel replica: a mixture-of-experts model served on `ep` ranks, attention data-
parallel (each rank runs its own sequences with every non-expert weight) and the routed experts split over the
ranks, dispatch and combine all-to-alls over the instance topology (compiler/expert_parallel.py).

The scheduler batches for the whole replica; its sequences are spread evenly over the ranks, so a step of B
sequences and N new tokens runs, on the step's slowest rank, ceil(B / ep) sequences and ceil(N / ep) tokens:

    step(B, N, C) = overhead + dense_ep(N) + lm_head(b) - lm_head(1) + layers x [decode(b, C) + prefill(n - b, C)]

with b = ceil(B / ep), n = ceil(N / ep). dense_ep(N) is `ep_estimate` of the model on one rank's n tokens
(everything but attention): the experts' grouped matmuls at the busiest rank's rows under the sampled routing
of all ep x n tokens, and the two all-to-alls per MoE layer. The attention parts are StepComponents' own at
the rank's shapes (a rank holds all heads, as tp=1).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from trnsim.errors import TrnsimWarning
from trnsim.hw.spec import HardwareSpec
from trnsim.serve.errors import ServeError
from trnsim.serve.step_components import SDPA, StepComponents


class EPStepComponents(StepComponents):
    """StepComponents of a replica of `ep` expert-parallel ranks (see the module docstring)."""

    def __init__(
        self,
        model: str,
        target: str | HardwareSpec,
        ep: int,
        instance: str | None,
        dtype: str,
        weight_format: str = "bf16",
        weight_layout: str | None = None,
    ) -> None:
        from trnsim.compiler.gpu_estimate import is_gpu_target

        if isinstance(ep, bool) or not isinstance(ep, int) or ep < 2:
            raise ServeError(f"ep (expert-parallel ranks) must be an integer >= 2, got {ep!r}")
        if is_gpu_target(target):
            raise ServeError("expert-parallel serving is priced on Trainium-class targets (trn1, trn2, trn3, inf2)")
        super().__init__(model, target, 1, None, dtype, weight_format, weight_layout)
        if self.weight_layout != "pytorch":
            raise ServeError("expert-parallel serving prices the PyTorch weight layout only (no serving stack yet)")
        self.ep = ep
        self.ep_instance = instance
        self.dispatch_bytes: dict[int, int] = {}  # per rank and MoE layer, by replica new tokens N

    def rank_shape(self, batch: int, new_tokens: int) -> tuple[int, int]:
        """(sequences, new tokens) of the step's fullest rank."""
        return math.ceil(batch / self.ep), math.ceil(new_tokens / self.ep)

    def cache_key(self) -> str:
        return f"{super().cache_key()} ep={self.ep} ep_instance={self.ep_instance}"

    def dense_s(self, new_tokens: int) -> float:
        """Everything but attention on one rank of a replica step of `new_tokens` tokens (see the docstring)."""
        hit = self._dense.get(new_tokens)
        if hit is None and self.dense_store is not None:
            hit = self.dense_store.load(self.dense_key()).get((0, new_tokens, 0.0))
        if hit is not None:
            self._dense[new_tokens] = hit
            return hit
        records = [r for r in self.rank_profile(new_tokens).records if r.kind != "host" and r.op != SDPA]
        seconds = 1e-6 * sum(r.total_device_us for r in records)
        self._dense[new_tokens] = seconds
        if self.dense_store is not None:
            self.dense_store.save(self.dense_key(), [((0, new_tokens, 0.0), seconds)])
        return seconds

    def rank_profile(self, new_tokens: int) -> Any:
        """The expert-parallel estimate of one rank's share of `new_tokens` (logits of its last token only)."""
        import torch

        from trnsim.compiler.expert_parallel import ep_estimate

        _, rank_tokens = self.rank_shape(1, new_tokens)
        ids = torch.zeros(1, rank_tokens, dtype=torch.long, device="meta")
        fmt = {} if self.format is None else {"dtype": self.format.name}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TrnsimWarning)  # host-side mask ops: left out of device time anyway
            result = ep_estimate(
                self.net,
                (ids,),
                {"logits_to_keep": 1},
                ep=self.ep,
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
        return self.overhead_s + self.dense_s(new_tokens) + logits + self.shape.layers * attention
