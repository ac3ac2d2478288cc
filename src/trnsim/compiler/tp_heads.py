"""The head split every tensor-parallel path shares, and which weights end in a collective.

Query heads are padded up to a multiple of tp, as transformers-neuronx and NxD Inference do (e.g.
Llama-2-70B's 64 heads at tp=24 run as 72, three per rank); KV heads fewer than tp are replicated (each rank
keeps one, NxD's REPLICATE_TO_TP_DEGREE), more than tp but not a multiple are padded likewise; a rank whose
query heads do not group evenly over its KV heads keeps one KV head per query head (NxD's CONVERT_TO_MHA).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trnsim.errors import CompileError


def local_heads(heads: int, kv_heads: int, tp: int) -> tuple[int, int]:
    """(query heads, KV heads) one rank holds, padding included (see the module docstring)."""
    if tp < 1 or heads < 1 or kv_heads < 1:
        raise CompileError(f"heads ({heads}), KV heads ({kv_heads}) and tp ({tp}) must be >= 1")
    q = -(-heads // tp)  # heads padded up to a multiple of tp
    kv = -(-kv_heads // tp)  # fewer than tp: one replica per rank; else padded up to a multiple of tp
    if q % kv:
        kv = q  # no even grouping on this rank: one KV head per query head
    return q, kv


@dataclass
class WeightRoles:
    """Which weights (get_attr paths of the captured graph) end in which collective ('all_reduce' after a
    row-parallel projection, 'all_gather' after the LM head); `current` is the role of the node being lowered
    (set by the GraphRunner), so a linear's collective follows its weight rather than its shape."""

    collective: dict[str, str] = field(default_factory=dict)
    current: str | None = None
