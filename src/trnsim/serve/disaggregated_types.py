"""The disaggregated scheduler's inputs and result: the KV link between the pools, the pools' caps, and a
ServeResult that also records every request's KV hand-off (see serve/disaggregated.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from trnsim.serve.errors import ServeError
from trnsim.serve.result import ServeResult
from trnsim.serve.schedulers.base import check_positive_int


@dataclass(frozen=True)
class KVLink:
    """The path a prompt's KV cache takes from the prefill pool to the decode pool.

    transfer time = latency + bytes / bandwidth; bandwidth is the pools' chip-to-chip links together (each
    prefill chip sends its shard of the KV heads in parallel), latency the fabric's hop (and fixed) latency."""

    bytes_per_s: float
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        if not (self.bytes_per_s > 0 and self.bytes_per_s < math.inf):
            raise ServeError(f"KVLink.bytes_per_s must be a finite number > 0, got {self.bytes_per_s!r}")
        if not (self.latency_s >= 0 and self.latency_s < math.inf):
            raise ServeError(f"KVLink.latency_s must be a finite number >= 0, got {self.latency_s!r}")

    def transfer_s(self, nbytes: float) -> float:
        return self.latency_s + nbytes / self.bytes_per_s


@dataclass(frozen=True)
class Disaggregated:
    """The caps of each pool (vLLM's defaults: 256 sequences, 8192 prompt tokens per prefill step)."""

    prefill_max_batch: int = 256
    prefill_max_batched_tokens: int = 8192  # a longer prompt still runs, alone
    decode_max_batch: int = 256
    name = "disaggregated"

    def __post_init__(self) -> None:
        for field in ("prefill_max_batch", "prefill_max_batched_tokens", "decode_max_batch"):
            check_positive_int("Disaggregated", field, getattr(self, field))


@dataclass(frozen=True)
class DisaggregatedResult(ServeResult):
    """A ServeResult (replicas = [prefill pool, decode pool]) with every request's KV hand-off."""

    prefill_end_s: np.ndarray  # per request: when its prefill step ended
    transfer_start_s: np.ndarray  # ... when its KV began to move
    transfer_end_s: np.ndarray  # ... and when it had landed on the decode pool
    transfer_bytes: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        seconds = self.transfer_end_s - self.transfer_start_s
        out["kv_transfer"] = {
            "bytes_total": float(self.transfer_bytes.sum()),
            "ms_mean": float(seconds.mean() * 1e3),
            "ms_max": float(seconds.max() * 1e3),
            "wait_ms_mean": float((self.transfer_start_s - self.prefill_end_s).mean() * 1e3),
        }
        out["pool_busy"] = {"prefill": float(self.busy_s[0]), "decode": float(self.busy_s[1])}
        return out
