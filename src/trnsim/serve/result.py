"""What a simulation returns: every request's timings, per-replica totals, and the metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trnsim.serve.metrics import SLO, ServeMetrics, compute_metrics
from trnsim.serve.model import Replica, ServedModel
from trnsim.serve.schedulers.base import StepRecord


@dataclass(frozen=True)
class ServeResult:
    """Per-request arrays are indexed by request id (arrival order for open-loop workloads)."""

    model: ServedModel
    replicas: list[Replica]
    scheduler: str
    arrival_s: np.ndarray
    scheduled_s: np.ndarray  # first time the request got KV blocks (left the queue)
    first_token_s: np.ndarray
    finish_s: np.ndarray  # its last token
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    replica: np.ndarray  # which replica served it
    preemptions: np.ndarray
    cached_tokens: np.ndarray  # prompt tokens served from the prefix cache
    busy_s: np.ndarray  # per replica
    steps: np.ndarray  # per replica
    kv_blocks: np.ndarray  # per replica: KV cache capacity in blocks
    token_times: list[np.ndarray] | None  # every output token's time, when recorded
    step_log: list[StepRecord] | None
    slo: SLO | None
    metrics: ServeMetrics

    @property
    def ttft_s(self) -> np.ndarray:
        return self.first_token_s - self.arrival_s

    @property
    def e2e_s(self) -> np.ndarray:
        return self.finish_s - self.arrival_s

    @property
    def tpot_s(self) -> np.ndarray:
        """Per request; NaN for one-token outputs."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(
                self.output_tokens > 1,
                (self.finish_s - self.first_token_s) / (self.output_tokens - 1),
                np.nan,
            )

    def metrics_for(self, slo: SLO | None) -> ServeMetrics:
        """The metrics again under another SLO (no new simulation)."""
        return compute_metrics(
            self.arrival_s,
            self.first_token_s,
            self.finish_s,
            self.prompt_tokens,
            self.output_tokens,
            self.busy_s,
            [r.price_per_hour for r in self.replicas],
            [r.power_w for r in self.replicas],
            int(self.preemptions.sum()),
            slo,
        )

    def to_dict(self) -> dict[str, Any]:
        """The metrics as plain data (the `--json` output), with the setup that produced them."""
        out = self.metrics.to_dict()
        out["model"] = self.model.name
        out["replicas"] = len(self.replicas)
        out["scheduler"] = self.scheduler
        return out
