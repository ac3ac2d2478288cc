"""Tensor parallelism for Llama-4 (llama4_text): its routed experts are one 3-D weight per projection,
run by transformers as batched matmuls (bmm) over all experts, not as a grouped matmul.

The split is the MoE families' (tensor_parallel.py): attention heads like Llama; every routed expert cut on its
intermediate dimension (gate_up_proj [experts, hidden, 2 x inter] keeps 1/tp of the gate columns and of the up
columns, down_proj [experts, inter, hidden] the matching rows); the shared expert and the dense layers' MLP
(Maverick interleaves them) like a Llama MLP. Each rank's experts and shared expert then produce partial sums
of the block's [tokens, hidden] output.

- Estimates (`estimate_roles`): the shared expert's partial output is added to the experts' before anything
  reads it, so one all-reduce per MoE block suffices; it is priced at the experts' down bmm (role
  EXPERTS_REDUCE, on the block's combined [tokens, hidden]: lowering/context.py `after_expert_bmm`), and the
  shared expert's down projection gets none.
- Compiled runs (`shard_moe`, used by tp_families.py): a rank graph can only exchange a tensor one op
  produces, so the experts' down bmm output [experts, tokens, hidden] and the shared expert's down output are
  each all-reduced (two per block, correct values, priced at what they move).
"""

from __future__ import annotations

from typing import Any

import torch

from trnsim.compiler.tp_shard import ROW, VOCAB, Sharder, set_param, span

FAMILY = "llama4_text"
# the routed experts' down bmm: all-reduce of the block's combined [tokens, hidden] (shared expert included)
EXPERTS_REDUCE = "all_reduce_experts"


def is_moe_block(module: Any) -> bool:
    """A Llama-4 MoE block: routed experts (3-D weights) and a shared expert."""
    experts = getattr(module, "experts", None)
    return isinstance(getattr(experts, "gate_up_proj", None), torch.Tensor) and hasattr(module, "shared_expert")


def shard_moe(block: Any, s: Sharder, shard_mlp: Any) -> None:
    """Rank s.rank's slice of one MoE block (compiled runs): experts on their intermediate dim, the shared
    expert by `shard_mlp` (tp_families' Llama MLP rule); both down projections end in an all-reduce."""
    experts = block.experts
    w = experts.gate_up_proj  # [experts, hidden, gate | up]
    half = w.shape[2] // 2
    gate, up = span(w[:, :, :half], 2, s.rank, s.tp), span(w[:, :, half:], 2, s.rank, s.tp)
    set_param(experts, "gate_up_proj", torch.cat([gate, up], 2))
    set_param(experts, "down_proj", span(experts.down_proj, 1, s.rank, s.tp))
    experts.intermediate_size = experts.expert_dim = gate.shape[2]
    s.roles.collective[s.path(experts) + ".down_proj"] = ROW
    shard_mlp(block.shared_expert, s)


def estimate_roles(model: torch.nn.Module) -> dict[str, str]:
    """The weights of an estimate's rank (built from the sharded config) that end in a collective, by name."""
    roles: dict[str, str] = {}
    for name, _ in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "self_attn":
            roles[f"{name}.o_proj.weight"] = ROW
        elif leaf == "feed_forward":
            # Both forms, whichever this layer holds: a folded stack of Maverick's alternating dense / MoE layers
            # renumbers them (compiler/layer_folding.py), so an index does not say which kind a layer is.
            roles[f"{name}.experts.down_proj"] = EXPERTS_REDUCE  # the shared expert's partials join it
            roles[f"{name}.down_proj.weight"] = ROW
    get_head = getattr(model, "get_output_embeddings", None)
    weight = getattr(get_head() if callable(get_head) else None, "weight", None)
    for name, param in model.named_parameters(remove_duplicate=False):
        if param is weight:  # a tied embedding may name the head's weight after the embedding
            roles[name] = VOCAB
    return roles
