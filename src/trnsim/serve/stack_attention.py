"""Context-encoding attention as transformers-neuronx (Neuron 2.18) computes it: unfused, scores in HBM.

trnsim's step cost prices prefill attention with the library's flash-attention kernel: causal pairs only,
scores kept on chip. transformers-neuronx before Neuron 2.19 had no flash-attention path. Its context
encoding builds the attention as separate HLO ops (`layers/attention.py` at the 2.18-era source:
`score` = Q @ K^T in the query's dtype, `mask` = a select of every score against the causal mask,
`context_combined` = softmax over the whole key axis, cast, then @ V), so every (query, key) pair of the
padded prompt is computed, stored and read back, the masked half included. Neuron 2.19's release notes
introduce "Flash Attention kernel support to enable LLM training and inference for large sequence lengths",
and the transformers-neuronx developer guide says the kernel is used from 8k tokens on (serving_stack.toml
quotes both).

`UnfusedContextAttention(parts)` prices that sequence of ops for one sequence of `queries` over `keys` on the
rank: the library batched_matmul (Q @ K^T), binary (the mask), softmax and batched_matmul (P @ V), each
simulated on the rank's core at the rank's heads. It adds no constant. A GQA model's K and V are repeated to
the query heads (`hlo.repeat_kv`); that copy is left out.
"""

from __future__ import annotations

import functools
from typing import Any


class UnfusedContextAttention:
    """One layer's unfused context attention on one rank, from `parts` (serve.step_components.StepComponents
    of a Trainium-class target: its spec, dtype and per-rank shape)."""

    def __init__(self, parts: Any) -> None:
        if parts.spec is None:
            raise ValueError("unfused context attention is priced on a Trainium-class target only")
        self.parts = parts

    @functools.cache  # noqa: B019 (one instance per step cost; the cache lives as long as it does)
    def seconds(self, queries: int, keys: int) -> float:
        """Seconds of score, mask, softmax and P @ V for `queries` queries over `keys` keys, every head of the
        rank, one sequence."""
        from trnsim import dtypes, kernels

        s = self.parts.shape
        dt = dtypes.resolve(self.parts.dtype)
        q = self._spec((s.heads, queries, s.head_dim), dt)
        k_t = self._spec((s.heads, s.head_dim, keys), dt)
        scores = self._spec((s.heads, queries, keys), dt)
        mask = self._spec((1, queries, keys), dt)
        v = self._spec((s.heads, keys, s.head_dim), dt)
        us = (
            self._us(kernels.batched_matmul, (q, k_t))
            + self._us(kernels.binary, (scores, mask, "add"))
            + self._us(kernels.softmax, (scores,))
            + self._us(kernels.batched_matmul, (scores, v))
        )
        return us * 1e-6

    @staticmethod
    def _spec(shape: tuple[int, ...], dtype: Any) -> Any:
        from trnsim.nki.kernel import TensorSpec

        return TensorSpec(shape, dtype)

    def _us(self, kernel: Any, args: tuple[Any, ...]) -> float:
        from trnsim.compiler.kernel_runner import extrapolation, run_kernel

        spec = self.parts.spec
        with extrapolation(True):  # long kernel loops extended from short probes (within ~1%)
            _, cost = run_kernel(kernel, args, {}, spec, functional=False)
        # a rank is a logical core whose physical cores share the kernel's work (compiler/logical_core.py)
        return float(cost.latency_us) / spec.chip.default_lnc
