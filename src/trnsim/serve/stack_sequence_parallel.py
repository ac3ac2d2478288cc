"""Sequence parallelism in NxD Inference's context encoding: norms and residual adds on 1/tp of the prompt.

With `sequence_parallel_enabled` (NxD Inference's feature guide, "Sequence Parallelism"; the Trn2 Llama-3.3-70B
and Llama-3.1-405B tutorials behind AWS's published trn2 numbers compile with `--sequence-parallel-enabled`),
context encoding keeps the hidden states split along the sequence between layers: the source
(models/model_base.py `process_sequence_parallel_hidden_states`, models/llama/modeling_llama.py) scatters the
embeddings over the tensor-parallel ranks, all-gathers them before the QKV and MLP projections and
reduce-scatters the attention and MLP outputs instead of all-reducing them. Each rank's RMSNorms and residual
adds then see 1/tp of the tokens. Token generation (one token per sequence) runs without it.

trnsim's estimate prices every rank running them on all tokens. `SequenceParallelSaving(parts)` takes the
estimate's own norm and residual-add kernels (those over [tokens, hidden]) at a reference token count, and
removes (1 - 1/tp) of them, scaled to the step's tokens: these kernels work token by token, so their time is
proportional to the tokens at prompt lengths (checked in tests/serve/test_serving_stack_sp.py). A ring
reduce-scatter plus all-gather moves the bytes of one ring all-reduce, so the collectives keep their price.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

from trnsim.serve.weight_layout import parse_operands

NORM_KERNELS = ("rmsnorm", "layernorm")
RESIDUAL_KERNEL = "binary"
RESIDUAL_OPS = ("aten.add", "linear_epilogue")  # the residual add as traced, or fused after a linear
# Reference prompt length whose estimate gives the per-token norm and residual cost: a point every step grid
# of 4,096 tokens or more computes (powers of 4), long enough that per-kernel fixed costs are amortised.
REFERENCE_TOKENS = 4096


class SequenceParallelSaving:
    """Seconds sequence parallelism takes off a context-encoding step of the rank model in `parts`
    (serve.step_components.StepComponents of a Trainium-class target)."""

    def __init__(self, parts: Any) -> None:
        if parts.spec is None:
            raise ValueError("sequence parallelism is priced on a Trainium-class target only")
        self.parts = parts

    def seconds(self, new_tokens: int) -> float:
        """What a prefill of `new_tokens` packed tokens saves: (1 - 1/tp) of its norm and residual-add time."""
        if self.parts.tp <= 1 or new_tokens <= 1:
            return 0.0
        reference = min(REFERENCE_TOKENS, new_tokens)
        per_token = self.token_wise_s(reference) / reference
        return (1.0 - 1.0 / self.parts.tp) * per_token * new_tokens

    @functools.cache  # noqa: B019 (one instance per step cost; the cache lives as long as it does)
    def token_wise_s(self, tokens: int) -> float:
        """Device seconds of the estimate's norms and residual adds over [tokens, hidden], every layer."""
        hidden = self.parts.shape.hidden
        return 1e-6 * sum(
            r.total_device_us for r in rank_records(self.parts, tokens) if _is_token_wise(r, tokens, hidden)
        )


@functools.lru_cache(maxsize=8)
def rank_records(parts: Any, tokens: int) -> list[Any]:
    """The kernel records of the compiler's estimate of the rank model in `parts` at `tokens` packed tokens, as
    dense(N) estimates it (logits of the last token, attention unpriced, long loops extended)."""
    import torch

    from trnsim.compiler.estimate import estimate
    from trnsim.compiler.kernel_runner import extrapolation
    from trnsim.compiler.unpriced import unpriced_ops
    from trnsim.errors import TrnsimWarning
    from trnsim.serve.step_components import SDPA

    ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
    fmt = {} if parts.format is None else {"dtype": parts.format.name}
    with warnings.catch_warnings(), extrapolation(True), unpriced_ops({SDPA}):
        warnings.simplefilter("ignore", TrnsimWarning)  # host-side mask ops, as dense(N) ignores them
        profile = estimate(
            parts.net, (ids,), {"logits_to_keep": 1}, target=parts.spec, tp=parts.tp, instance=parts.instance, **fmt
        )
    return [r for r in profile.records if r.kind == "kernel"]


def _is_token_wise(record: Any, tokens: int, hidden: int) -> bool:
    """A norm over the hidden states, or a residual add of two [.., tokens, hidden] tensors."""
    operands = parse_operands(record.shapes)
    if not operands:
        return False
    shape = operands[0][0]
    on_hidden = len(shape) >= 2 and shape[-1] == hidden and shape[-2] == tokens
    if record.kernel in NORM_KERNELS:
        return on_hidden
    if record.kernel == RESIDUAL_KERNEL:  # an add (aten.add, or the linear epilogue's residual), not a gating mul
        is_add = any(name in record.op for name in RESIDUAL_OPS)
        return is_add and on_hidden and len(operands) == 2 and operands[1][0] == shape
    return False
