"""Llama-4's MoE blocks as deployments run them, for estimates: each token through its top-k experts only.

transformers' Llama4TextMoe runs every expert on every token: it repeats the tokens once per expert, scales
each copy by its router score (sigmoid of the top-k logits, zero elsewhere) and multiplies all of them by every
expert's weights in two batched matmuls. The result is right, but it costs experts / top-k times the expert
FLOPs (16x for Scout, 128x for Maverick) and a copy of the tokens per expert, which no serving stack pays
(vLLM's fused MoE and NxD Inference route each token to its top-k experts). An estimate prices this routed form
instead, with the ops the other MoE families' grouped-matmul path emits (topk, sort of the expert ids, row
gather, histc + cumsum offsets, grouped matmuls, the inverse permutation), which the compiler lowers to the
router, dispatch and grouped-matmul kernels (lowering/moe.py):

    scores = sigmoid(topk(router(x)))            # [tokens, k]
    rows   = x[token of each (token, expert) pair, sorted by expert] * its score   # Llama-4 scales the input
    out    = shared_expert(x) + sum over k of down(silu(gate(rows)) * up(rows)) back in token order

`RoutedLlama4TextMoe` computes the same values as Llama4TextMoe (checked against it in the tests); compiled
models (torch.compile, trnsim.compile) keep transformers' own module.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

FAMILY = "llama4_text"


def _grouped_mm(x: torch.Tensor, w: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    from transformers.integrations.moe import _grouped_mm as grouped  # the op transformers' MoE families emit

    return grouped(x, w, offsets)


def _routed_forward(self: Any, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = hidden_states.reshape(-1, self.hidden_dim)
    logits = F.linear(x, self.router.weight)
    top_value, top_index = torch.topk(logits, self.top_k, dim=1)
    scores = torch.sigmoid(top_value.float()).to(x.dtype).reshape(-1)
    expert_ids, perm = torch.sort(top_index.reshape(-1))
    rows = x[perm // self.top_k] * scores[perm].unsqueeze(-1)
    counts = torch.histc(expert_ids.float(), bins=self.num_experts, min=0, max=self.num_experts - 1)
    offsets = torch.cumsum(counts, dim=0, dtype=torch.int32)
    experts = self.experts
    gate, up = _grouped_mm(rows, experts.gate_up_proj, offsets).chunk(2, dim=-1)
    down = _grouped_mm(up * experts.act_fn(gate), experts.down_proj, offsets)
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.size(0), device=perm.device)
    routed = down[inverse].view(x.shape[0], self.top_k, self.hidden_dim).sum(dim=1)
    return self.shared_expert(x) + routed, logits


_ROUTED: dict[type, type] = {}


def route_experts(model: torch.nn.Module) -> torch.nn.Module:
    """`model` (a Llama-4 text model, changed in place) with every MoE block computing the routed form."""
    for module in model.modules():
        base = type(module)
        if base.__name__ != "Llama4TextMoe" or base in _ROUTED.values():
            continue
        if base not in _ROUTED:
            _ROUTED[base] = type(f"Routed{base.__name__}", (base,), {"forward": _routed_forward})
        module.__class__ = _ROUTED[base]
    return model
