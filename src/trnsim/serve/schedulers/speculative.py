"""Speculative decoding with a draft model: how many tokens a step yields and what the step costs.

Each decode step the draft proposes k tokens one at a time; the target verifies all k+1 positions in one
pass. With per-token acceptance rate alpha, the accepted drafts A follow P(A=a) = alpha^a (1-alpha) for
a < k and P(A=k) = alpha^k, and the step yields A + 1 tokens: E = (1 - alpha^(k+1)) / (1 - alpha)
(Leviathan et al. 2023, "Fast Inference from Transformers via Speculative Decoding", eq. 1).

Modelling choices (assumptions): one draw per step applies to the whole batch, so the batch advances in
lockstep (the mean is exact; per-request spread is somewhat understated); the draft model's weights and KV
cache fit in the memory reserve; rejected drafts' KV slots are freed within the step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trnsim.serve.errors import ServeError
from trnsim.serve.step_cost import StepCost


@dataclass(frozen=True)
class SpeculativeDecoding:
    draft: StepCost
    k: int
    alpha: float

    def __post_init__(self) -> None:
        if int(self.k) != self.k or self.k < 1:
            raise ServeError(f"speculative decoding needs k >= 1 draft tokens, got k={self.k}")
        if not 0 <= self.alpha <= 1:
            raise ServeError(f"speculative acceptance rate alpha must be in [0, 1], got {self.alpha}")
        if not callable(getattr(self.draft, "step_time_s", None)):
            raise ServeError("speculative draft must be a StepCost (with step_time_s(batch, new_tokens, context))")

    @property
    def expected_tokens(self) -> float:
        """Mean tokens per step per sequence: (1 - alpha^(k+1)) / (1 - alpha), or k+1 at alpha = 1."""
        if self.alpha == 1:
            return float(self.k + 1)
        return (1 - self.alpha ** (self.k + 1)) / (1 - self.alpha)

    def step_time_s(self, target: StepCost, batch: int, decode_seqs: int, prefill_tokens: int, context: float) -> float:
        """Draft: k passes over the decoders (the first also ingests new prompt tokens); target: one pass over
        k+1 tokens per decoder plus the prompt tokens."""
        k = self.k
        if decode_seqs == 0:
            return target.step_time_s(batch, prefill_tokens, context) + self.draft.step_time_s(
                batch, prefill_tokens, context
            )
        draft = self.draft.step_time_s(batch, decode_seqs + prefill_tokens, context)
        if k > 1:
            draft += (k - 1) * self.draft.step_time_s(decode_seqs, decode_seqs, context)
        return draft + target.step_time_s(batch, decode_seqs * (k + 1) + prefill_tokens, context)


class AcceptanceSampler:
    """Draws tokens-per-step from the seeded generator, a few thousand at a time (numpy calls are costly)."""

    def __init__(self, spec: SpeculativeDecoding, rng: np.random.Generator, chunk: int = 4096) -> None:
        self.spec = spec
        self.rng = rng
        self.chunk = chunk
        self._buffer: list[int] = []

    def _refill(self) -> None:
        k, alpha = self.spec.k, self.spec.alpha
        if alpha == 1:
            accepted = np.full(self.chunk, k)
        else:
            # Drafts accepted before the first rejection: geometric(1 - alpha) - 1, capped at k.
            accepted = np.minimum(self.rng.geometric(1 - alpha, self.chunk) - 1, k)
        self._buffer = (accepted + 1).tolist()[::-1]

    def draw(self) -> int:
        if not self._buffer:
            self._refill()
        return self._buffer.pop()
