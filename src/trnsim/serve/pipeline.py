"""Pipeline parallelism for serving: the model's layers split into `stages` equal stages on their own chips.

A step's batch is cut into micro-batches (whole sequences, as evenly as possible) that flow through the stages
one after another; between two stages a micro-batch's activations (tokens x hidden x bytes) cross the link
joining them, which each stage boundary has to itself and which runs alongside compute. Every stage is a
copy of one tp group running 1/stages of the layers, so a micro-batch takes 1/stages of the whole model's step
time on that tp group (`stage_cost`, the estimate the other schedulers use) on each stage: uniform stages
(embedding and LM head spread with the layers). The step ends when the last micro-batch leaves the last stage
(a flow shop: stages and links are machines, micro-batches jobs in order). For equal micro-batches with stage
time t and transfer time x that is

    P t + (P - 1) x + (m - 1) max(t, x)

so one micro-batch (a single sequence) pays the whole bubble: P stages one after another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trnsim.serve.errors import ServeError
from trnsim.serve.step_cost import StepCost


@dataclass(frozen=True)
class PipelineStepCost:
    """A StepCost for a model in `stages` pipeline stages (see the module docstring).

    stage_cost: the whole model's step cost on one stage's tp group; hidden_size x activation_bytes: one token's
    activation between stages; link_bytes_per_s / link_latency_s: the path from one stage to the next;
    micro_batches: how many a step is cut into at most (default: one per stage, the fewest that fill the pipe)."""

    stage_cost: StepCost
    stages: int
    hidden_size: int
    activation_bytes: int
    link_bytes_per_s: float
    link_latency_s: float = 0.0
    micro_batches: int | None = None

    def __post_init__(self) -> None:
        for name in ("stages", "hidden_size", "activation_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ServeError(f"PipelineStepCost.{name} must be a whole number >= 1, got {value!r}")
        if self.micro_batches is not None and (not isinstance(self.micro_batches, int) or self.micro_batches < 1):
            raise ServeError(f"PipelineStepCost.micro_batches must be a whole number >= 1, got {self.micro_batches!r}")
        if not (self.link_bytes_per_s > 0 and self.link_bytes_per_s < math.inf):
            raise ServeError(f"PipelineStepCost.link_bytes_per_s must be finite and > 0, got {self.link_bytes_per_s!r}")
        if not (self.link_latency_s >= 0 and self.link_latency_s < math.inf):
            raise ServeError(f"PipelineStepCost.link_latency_s must be finite and >= 0, got {self.link_latency_s!r}")

    def split(self, batch: int, new_tokens: int) -> list[tuple[int, int]]:
        """(sequences, new tokens) of each micro-batch: sequences as even as possible, tokens in proportion."""
        m = min(self.micro_batches or self.stages, batch)
        sizes = [batch // m + (1 if i < batch % m else 0) for i in range(m)]
        parts: list[tuple[int, int]] = []
        given = 0
        seen = 0
        for size in sizes:
            seen += size
            upto = new_tokens * seen // batch  # cumulative share, so the tokens add up exactly
            parts.append((size, max(upto - given, 1)))
            given = upto
        return parts

    def transfer_s(self, tokens: int) -> float:
        """One micro-batch's activations from one stage to the next."""
        return self.link_latency_s + tokens * self.hidden_size * self.activation_bytes / self.link_bytes_per_s

    def step_time_s(self, batch: int, new_tokens: int, context: float) -> float:
        p = self.stages
        # Machines in order: stage 0, link 0, stage 1, ..., stage p-1; done[k] = when machine k freed up.
        done = [0.0] * (2 * p - 1)
        for seqs, tokens in self.split(batch, new_tokens):
            work = self.stage_cost.step_time_s(seqs, tokens, context) / p
            hop = self.transfer_s(tokens)
            ready = 0.0
            for k in range(2 * p - 1):
                ready = max(ready, done[k]) + (work if k % 2 == 0 else hop)
                done[k] = ready
        return done[-1]


def pipeline_closed_form_s(stages: int, micro_batches: int, stage_s: float, transfer_s: float) -> float:
    """The step time of `micro_batches` equal micro-batches through `stages` uniform stages."""
    return stages * stage_s + (stages - 1) * transfer_s + (micro_batches - 1) * max(stage_s, transfer_s)
