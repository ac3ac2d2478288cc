"""transformers-neuronx's decode RMSNorm on hidden-major activations: the features spread over the partitions.

transformers-neuronx (2.18) runs its decoder on `HSB` activations, [hidden, sequence, batch]: `attention_layout`
defaults to HSB (config.py), the decoder transposes its input to put the hidden dimension first (decoder.py),
and the Llama layer normalises over dim 0 (llama/hlo.py `hlo.rms_norm(..., dim=0)`), with a dedicated RMSNorm
custom call (`rms_norm_triton`) when a step holds one token. On a NeuronCore the leading dimension is the
partition dimension, so one token's hidden features lie across the 128 partitions.

trnsim's estimate normalises PyTorch's [tokens, hidden] rows, one token per partition: a decode token's 8,192
features go through one partition's lane. `HsbNormSaving(parts)` re-prices each RMSNorm of a decode step as the
library rmsnorm on [128 x tokens, hidden / 128], the same elementwise work spread over the partitions. The
cross-partition sum of squares (one 128-column TensorE matmul per token) is left out. Both are simulated; no
constant is added.
"""

from __future__ import annotations

import functools
from typing import Any

from trnsim.serve.stack_sequence_parallel import rank_records
from trnsim.serve.weight_layout import parse_operands

NORM_KERNEL = "rmsnorm"


class HsbNormSaving:
    """Seconds the hidden-major RMSNorms take off a decode step of the rank model in `parts`
    (serve.step_components.StepComponents of a Trainium-class target)."""

    def __init__(self, parts: Any) -> None:
        if parts.spec is None:
            raise ValueError("hidden-major norms are priced on a Trainium-class target only")
        self.parts = parts

    @functools.cache  # noqa: B019 (one instance per step cost; the cache lives as long as it does)
    def seconds(self, tokens: int) -> float:
        """Estimate's RMSNorm time minus hidden-major RMSNorm time for a step of `tokens` decode tokens."""
        hidden = self.parts.shape.hidden
        partitions = self.parts.spec.core.sbuf.partitions
        if hidden % partitions:
            return 0.0
        total_us = 0.0
        for r in rank_records(self.parts, tokens):
            operands = parse_operands(r.shapes)
            if r.kernel != NORM_KERNEL or not operands or operands[0][0][-1] != hidden:
                continue
            total_us += r.count * (r.device_us - self._hidden_major_us(tokens, operands[0][1]))
        return total_us * 1e-6

    def _hidden_major_us(self, tokens: int, dtype: str) -> float:
        from trnsim import dtypes, kernels
        from trnsim.compiler.kernel_runner import extrapolation, run_kernel
        from trnsim.nki.kernel import TensorSpec

        spec = self.parts.spec
        partitions = spec.core.sbuf.partitions
        dt = dtypes.resolve(dtype)
        per_partition = self.parts.shape.hidden // partitions
        x = TensorSpec((1, partitions * tokens, per_partition), dt)
        gamma = TensorSpec((per_partition,), dt)
        with extrapolation(True):
            _, cost = run_kernel(kernels.rmsnorm, (x, gamma), {}, spec, functional=False)
        return float(cost.latency_us) / spec.chip.default_lnc
