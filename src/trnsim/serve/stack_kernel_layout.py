"""NxD Inference's kernel weight layouts in context encoding: QKV and MLP weights stored K-major.

With `qkv_kernel_enabled` and `mlp_kernel_enabled` (the Trn2 Llama-3.3-70B and Llama-3.1-405B tutorials behind
AWS's published trn2 numbers compile with `--fused-qkv --qkv-kernel-enabled --mlp-kernel-enabled`), NxD Inference
transposes the QKV, gate, up and down weights on the host "to the layout expected by kernels"
(modules/attention/gqa.py and models/llama/modeling_llama.py, `transpose_parallel_linear_layer`): [in, out].
o_proj is transposed only with `out_proj_kernel_enabled`, which those tutorials leave off.

trnsim's step grid prices the linears of a step of more than 128 tokens as its estimate lowers them, on
PyTorch's [out, in] weights (serve/weight_layout.py re-lays only decode-sized ones). `KernelWeightLayout(parts)`
re-prices the deployment's K-major projections of a prefill with the library matmul on [in, out], at a
reference token count, and scales the difference to the step's tokens (the linears of a prompt are GEMMs whose
time is proportional to the tokens at those lengths). Both kernels are simulated; no constant is added.
"""

from __future__ import annotations

import functools
from typing import Any

from trnsim.serve.stack_sequence_parallel import REFERENCE_TOKENS, rank_records
from trnsim.serve.step_components import RELAYOUT_MAX_TOKENS  # shorter steps already price their better layout
from trnsim.serve.weight_layout import LINEAR_KERNEL, linear_problem

PROJECTIONS = ("qkv", "mlp")  # the kernels whose weights NxD Inference stores K-major (o_proj stays [out, in])


class KernelWeightLayout:
    """Seconds the K-major QKV (`"qkv"` in `projections`) and MLP (`"mlp"`) weights take off a prefill of the rank
    model in `parts` (serve.step_components.StepComponents of a Trainium-class target); negative if slower."""

    def __init__(self, parts: Any, projections: tuple[str, ...]) -> None:
        if parts.spec is None:
            raise ValueError("kernel weight layouts are priced on a Trainium-class target only")
        unknown = set(projections) - set(PROJECTIONS)
        if unknown:
            raise ValueError(f"unknown kernel projections {sorted(unknown)}; known: {', '.join(PROJECTIONS)}")
        self.parts = parts
        self.projections = projections

    def seconds(self, new_tokens: int) -> float:
        if new_tokens <= RELAYOUT_MAX_TOKENS or not self.projections:
            return 0.0
        reference = min(REFERENCE_TOKENS, new_tokens)
        return self.saving_s(reference) / reference * new_tokens

    @functools.cache  # noqa: B019 (one instance per step cost; the cache lives as long as it does)
    def saving_s(self, tokens: int) -> float:
        """Estimate's time minus K-major time of the deployment's QKV/MLP linears at `tokens` packed tokens."""
        total_us = 0.0
        for r in rank_records(self.parts, tokens):
            problem = linear_problem(r.shapes) if r.kernel == LINEAR_KERNEL else None
            if problem is None or self._projection(problem[1], problem[2]) not in self.projections:
                continue
            total_us += r.count * (r.device_us - self._k_major_us(*problem))
        return total_us * 1e-6

    def _projection(self, k: int, n: int) -> str:
        """'qkv' (in = hidden, a column-parallel Q/K/V or fused QKV), 'mlp' (gate/up: in = hidden and out = the
        rank's MLP width; down: in = that width, out = hidden), or 'other' (o_proj: in = the rank's heads; the
        LM head: out = the rank's vocabulary)."""
        s = self.parts.shape
        mlp_width = self._mlp_width()
        if n == s.vocab and k == s.hidden:  # the LM head (its vocabulary shard)
            return "other"
        if k == s.hidden:
            return "mlp" if n == mlp_width else "qkv"
        if n == s.hidden and k == mlp_width and k != s.heads * s.head_dim:
            return "mlp"
        return "other"

    def _mlp_width(self) -> int:
        inter = int(getattr(self.parts.config, "intermediate_size", 0) or 0)
        return -(-inter // self.parts.tp)  # padded up when tp does not divide it

    @functools.cache  # noqa: B019
    def _k_major_us(self, m: int, k: int, n: int, x_dtype: str, w_dtype: str) -> float:
        from trnsim import dtypes, kernels
        from trnsim.compiler.kernel_runner import extrapolation, run_kernel
        from trnsim.nki.kernel import TensorSpec

        spec = self.parts.spec
        x = TensorSpec((m, k), dtypes.resolve(x_dtype))
        w = TensorSpec((k, n), dtypes.resolve(w_dtype))
        with extrapolation(True):
            _, cost = run_kernel(kernels.matmul, (x, w), {}, spec, functional=False)
        return float(cost.latency_us) / spec.chip.default_lnc
