"""Where each decoder family keeps its attention and MLP weights, and how one rank's slice of them is cut.

One function per layout, found by the attention / MLP module's attributes (the Hugging Face code reads
its head count from the weights' shapes (a -1 in its views) or from the attributes set here):

- separate q/k/v/o projections (Llama, Mistral, Qwen2/3, Gemma, OPT, GPT-J): rows of q/k/v per head,
  columns of the output projection;
- GPT-2's fused Conv1D c_attn ([in, q|k|v]) and c_proj;
- GPT-NeoX's fused query_key_value, per head [q, k, v];
- Falcon's fused query_key_value: multi-query [q heads | k | v], per head [q, k, v], or per KV group
  [queries, k, v] (the new decoder architecture);
- BLOOM's fused query_key_value per head [q, k, v], with each rank's rows of the ALiBi biases;
- MLPs: gate/up/down (Llama-like), fc1/fc2 (OPT), fc_in/fc_out (GPT-J), dense_h_to_4h/dense_4h_to_h
  (NeoX, Falcon), c_fc/c_proj (GPT-2).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from trnsim.compiler.tp_llama4 import is_moe_block, shard_moe
from trnsim.compiler.tp_shard import (
    ROW,
    VOCAB,
    HeadSplit,
    Sharder,
    ShardRoles,
    blocks,
    rank0_bias,
    set_param,
    span,
)
from trnsim.errors import CompileError

FAMILIES = (
    "bloom",
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "phi3",
    "gpt2",
    "gptj",
    "gpt_neox",
    "opt",
    "falcon",
    "llama4_text",  # its MoE blocks: tp_llama4.py
)


_ATTENTION = ("self_attn", "attn", "attention", "self_attention")  # names of a layer's attention module
_MLPS = ("mlp", "feed_forward")


def _heads(config: Any, tp: int) -> HeadSplit:
    heads = getattr(config, "num_attention_heads", None) or config.n_head
    kv = getattr(config, "num_key_value_heads", None) or heads
    if getattr(config, "model_type", "") == "falcon":
        if getattr(config, "alibi", False):
            raise CompileError(
                f"tp={tp}: Falcon with ALiBi adds its per-head biases to the attention mask for all heads; "
                "splitting it is not implemented, use tp=1"
            )
        if config.new_decoder_architecture:
            kv = config.num_kv_heads
        else:
            kv = 1 if config.multi_query else heads
    return HeadSplit(heads, kv, tp)


def _set_heads(attn: Any, q: int, kv: int) -> None:
    for name in ("num_heads", "num_attention_heads"):
        if isinstance(getattr(attn, name, None), int):
            setattr(attn, name, q)
    for name in ("num_key_value_heads", "num_kv_heads"):
        if isinstance(getattr(attn, name, None), int):
            setattr(attn, name, kv)
    if isinstance(getattr(attn, "num_key_value_groups", None), int):
        attn.num_key_value_groups = q // kv


def _separate_qkv(attn: Any, split: HeadSplit, s: Sharder, d: int) -> None:
    out = getattr(attn, "o_proj", None) or attn.out_proj
    qs, kvs = split.q_slots(s.rank), split.kv_slots(s.rank)
    s.linear_rows(attn.q_proj, qs, d)
    s.linear_rows(attn.k_proj, kvs, d)
    s.linear_rows(attn.v_proj, kvs, d)
    s.linear_cols(out, qs, d)


def _phi3_qkv(attn: Any, split: HeadSplit, s: Sharder, d: int) -> None:
    w, h, kv = attn.qkv_proj.weight, split.heads * d, split.kv_heads * d
    qs, kvs = split.q_slots(s.rank), split.kv_slots(s.rank)
    set_param(
        attn.qkv_proj,
        "weight",
        torch.cat([blocks(w[:h], 0, qs, d), blocks(w[h : h + kv], 0, kvs, d), blocks(w[h + kv :], 0, kvs, d)]),
    )
    attn.qkv_proj.out_features = attn.qkv_proj.weight.shape[0]
    s.linear_cols(attn.o_proj, qs, d)
    # Phi-3 cuts q/k/v out of the fused output by its config's head count: the rank copy's config says the
    # rank's heads (head_dim pinned first, as the rotary embedding derives it from the head count otherwise)
    cfg = attn.config
    cfg.head_dim = d
    cfg.num_attention_heads, cfg.num_key_value_heads = split.local


def _gpt2_attention(attn: Any, split: HeadSplit, s: Sharder, d: int) -> None:
    w, b, h = attn.c_attn.weight, attn.c_attn.bias, split.heads * d  # Conv1D: weight [in, out]
    qs = split.q_slots(s.rank)
    set_param(attn.c_attn, "weight", torch.cat([blocks(w[:, i * h : (i + 1) * h], 1, qs, d) for i in range(3)], 1))
    set_param(attn.c_attn, "bias", torch.cat([blocks(b[i * h : (i + 1) * h], 0, qs, d) for i in range(3)]))
    attn.c_attn.nf = attn.c_attn.weight.shape[1]
    attn.split_size = len(qs) * d
    set_param(attn.c_proj, "weight", blocks(attn.c_proj.weight, 0, qs, d))
    rank0_bias(attn.c_proj, s.rank)
    s.roles.collective[s.path(attn.c_proj) + ".weight"] = ROW


def _fused_per_head(attn: Any, split: HeadSplit, s: Sharder, d: int) -> None:
    """query_key_value rows grouped per head as [q, k, v] (GPT-NeoX, Falcon without multi-query)."""
    s.linear_rows(attn.query_key_value, split.q_slots(s.rank), 3 * d)
    s.linear_cols(attn.dense, split.q_slots(s.rank), d)


def _falcon_multi_query(attn: Any, split: HeadSplit, s: Sharder, d: int) -> None:
    """Multi-query Falcon: query_key_value rows are [q heads | k | v], one K/V head every rank keeps."""
    lin, h = attn.query_key_value, split.heads * d
    qs, kvs = split.q_slots(s.rank), split.kv_slots(s.rank)

    def cut(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([blocks(t[:h], 0, qs, d), blocks(t[h : h + d], 0, kvs, d), blocks(t[h + d :], 0, kvs, d)])

    set_param(lin, "weight", cut(lin.weight))
    if lin.bias is not None:
        set_param(lin, "bias", cut(lin.bias))
    lin.out_features = lin.weight.shape[0]
    s.linear_cols(attn.dense, qs, d)


_ALIBI_CLASSES: dict[type, type] = {}


def _falcon_grouped(attn: Any, split: HeadSplit, s: Sharder, d: int) -> None:
    """Falcon's new decoder architecture: query_key_value rows are, per KV head, its query heads then its K
    and V ([kv, queries per kv + 2, head_dim]); a rank's rows keep that layout over its own KV slots."""
    lin = attn.query_key_value
    share = split.heads // split.kv_heads
    q, kv = split.local
    qs, kvs = split.q_slots(s.rank), split.kv_slots(s.rank)
    group, stride = q // kv, share + 2  # stride: rows per KV head in the full layout
    rows: list[int | None] = []
    for slot, g in enumerate(kvs):
        for h in qs[slot * group : (slot + 1) * group]:
            rows.append(None if h is None else (h // share) * stride + h % share)
        rows += [None, None] if g is None else [g * stride + share, g * stride + share + 1]
    s.linear_rows(lin, rows, d)
    s.linear_cols(attn.dense, qs, d)


def _rank_alibi(attn: Any, slots: list[int | None], heads: int) -> None:
    """BLOOM builds its ALiBi biases ([batch * heads, 1, keys]) for all heads outside the attention modules: a
    rank's attention keeps the rows of its own heads (zeros for a padding head). The heads are picked by an
    index buffer, so every rank's graph is the same program on its own tensors."""
    base = type(attn)
    if base not in _ALIBI_CLASSES:

        def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
            def local(alibi: torch.Tensor) -> torch.Tensor:
                per_head = alibi.reshape(-1, self._trnsim_heads, *alibi.shape[1:])
                padded = torch.cat([per_head, torch.zeros_like(per_head[:, :1])], 1)  # index `heads`: a zero row
                return padded.index_select(1, self._trnsim_head_index).reshape(-1, *alibi.shape[1:])

            if "alibi" in kwargs:
                kwargs["alibi"] = local(kwargs["alibi"])
            else:  # forward(hidden_states, residual, alibi, ...)
                args = (*args[:2], local(args[2]), *args[3:])
            return base.forward(self, *args, **kwargs)

        _ALIBI_CLASSES[base] = type(f"Rank{base.__name__}", (base,), {"forward": forward})
    attn.__class__ = _ALIBI_CLASSES[base]
    attn._trnsim_heads = heads
    device = attn.query_key_value.weight.device  # meta for an estimate
    index = torch.tensor([heads if g is None else g for g in slots], dtype=torch.long, device=device)
    attn.register_buffer("_trnsim_head_index", index, persistent=False)


def _attention(attn: Any, split: HeadSplit, s: Sharder) -> bool:
    d = getattr(attn, "head_dim", None) or getattr(attn, "head_size", None)
    if not isinstance(d, int):
        return False
    if hasattr(attn, "q_proj") and hasattr(attn, "k_proj"):
        _separate_qkv(attn, split, s, d)
    elif hasattr(attn, "qkv_proj"):
        _phi3_qkv(attn, split, s, d)
    elif hasattr(attn, "c_attn") and hasattr(attn, "split_size"):
        _gpt2_attention(attn, split, s, d)
    elif hasattr(attn, "query_key_value") and getattr(attn, "new_decoder_architecture", False):
        _falcon_grouped(attn, split, s, d)
    elif hasattr(attn, "query_key_value") and getattr(attn, "multi_query", False):
        _falcon_multi_query(attn, split, s, d)
    elif hasattr(attn, "query_key_value"):
        _fused_per_head(attn, split, s, d)
        if type(attn).__name__ == "BloomAttention":
            _rank_alibi(attn, split.q_slots(s.rank), split.heads)
    else:
        return False
    _set_heads(attn, *split.local)
    return True


def _mlp(mlp: Any, s: Sharder) -> bool:
    pairs = (
        (("gate_proj", "up_proj"), "down_proj"),
        (("fc1",), "fc2"),
        (("fc_in",), "fc_out"),
        (("dense_h_to_4h",), "dense_4h_to_h"),
    )
    for ups, down in pairs:
        if all(isinstance(getattr(mlp, u, None), torch.nn.Linear) for u in ups) and hasattr(mlp, down):
            for u in ups:
                s.span_rows(getattr(mlp, u))
            s.span_cols(getattr(mlp, down))
            return True
    if hasattr(mlp, "gate_up_proj") and hasattr(mlp, "down_proj"):  # Phi-3: [gate | up]
        w = mlp.gate_up_proj.weight
        half = w.shape[0] // 2
        set_param(
            mlp.gate_up_proj, "weight", torch.cat([span(w[:half], 0, s.rank, s.tp), span(w[half:], 0, s.rank, s.tp)])
        )
        s.span_cols(mlp.down_proj)
        return True
    if hasattr(mlp, "c_fc") and hasattr(mlp, "c_proj"):  # GPT-2 Conv1D: weight [in, out]
        set_param(mlp.c_fc, "weight", span(mlp.c_fc.weight, 1, s.rank, s.tp))
        set_param(mlp.c_fc, "bias", span(mlp.c_fc.bias, 0, s.rank, s.tp))
        mlp.c_fc.nf = mlp.c_fc.weight.shape[1]
        set_param(mlp.c_proj, "weight", span(mlp.c_proj.weight, 0, s.rank, s.tp))
        rank0_bias(mlp.c_proj, s.rank)
        s.roles.collective[s.path(mlp.c_proj) + ".weight"] = ROW
        return True
    return False


def shard_blocks(model: torch.nn.Module, config: Any, s: Sharder) -> None:
    """Slice every decoder layer's attention and MLP of `model` (a deep copy) in place for rank s.rank."""
    model_type = getattr(config, "model_type", "")
    if model_type not in FAMILIES:
        raise CompileError(
            f"tp={s.tp} sharding is implemented for the decoder families {', '.join(FAMILIES)}, not "
            f"{model_type or type(model).__name__}; use tp=1 for this model"
        )
    split = _heads(config, s.tp)
    attns = mlps = 0
    for name, module in list(model.named_modules()):
        leaf = name.rsplit(".", 1)[-1]
        if leaf in _ATTENTION and _attention(module, split, s):
            attns += 1
        elif leaf in _MLPS and is_moe_block(module):
            shard_moe(module, s, _mlp)
            mlps += 1
        elif (leaf in _MLPS or (leaf.isdigit() and hasattr(module, "fc1"))) and _mlp(module, s):
            mlps += 1  # OPT keeps fc1/fc2 on the decoder layer itself
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", 0)
    if attns != layers or mlps != layers:
        raise CompileError(
            f"tp={s.tp}: found {attns} attention and {mlps} MLP blocks to split in {type(model).__name__}, expected "
            f"{layers} of each; its layout is not one trnsim knows how to shard"
        )


_ATTENTION_OUT = ("o_proj", "out_proj", "dense", "c_proj")
_MLP_DOWN = ("down_proj", "fc2", "fc_out", "dense_4h_to_h", "c_proj")


def collective_roles(model: Any, config: Any) -> dict[str, str] | None:
    """The row-parallel and LM-head weights of an already split rank (by module name), or None where the
    layers are not all found (e.g. MoE experts): then the collectives are placed by shape."""
    roles: dict[str, str] = {}
    attns = mlps = 0
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in _ATTENTION:
            out = next((c for c in _ATTENTION_OUT if isinstance(getattr(module, c, None), torch.nn.Module)), None)
            if out is not None:
                roles[f"{name}.{out}.weight"] = ROW
                attns += 1
        elif leaf in _MLPS or (leaf.isdigit() and hasattr(module, "fc2")):
            down = next((c for c in _MLP_DOWN if isinstance(getattr(module, c, None), torch.nn.Module)), None)
            if down is not None:
                roles[f"{name}.{down}.weight"] = ROW
                mlps += 1
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", 0)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    if attns != layers or mlps != layers or not isinstance(weight, torch.Tensor):
        return None
    for name, param in model.named_parameters(remove_duplicate=False):
        if param is weight:  # a tied embedding may name the head's weight after the embedding
            roles[name] = VOCAB
    return roles


def shard_model(model: torch.nn.Module, tp: int, rank: int) -> tuple[torch.nn.Module, ShardRoles]:
    """Rank `rank`'s copy of `model` (a Hugging Face decoder) split over `tp` ranks."""
    config = getattr(model, "config", None)
    if config is None:
        raise CompileError(
            f"tp={tp} is not supported for {type(model).__name__}: tensor parallelism splits the heads and MLP of "
            "Hugging Face decoders (a model with .config); use tp=1 for it"
        )
    local = copy.deepcopy(model)
    roles = ShardRoles()
    sharder = Sharder(tp, rank, roles, {id(m): p for p, m in local.named_modules()})
    with torch.no_grad():
        shard_blocks(local, config, sharder)
        sharder.lm_head(local)
    return local.eval(), roles


def shard_all(model: torch.nn.Module, tp: int) -> tuple[list[torch.nn.Module], ShardRoles]:
    """Every rank's copy, and the roles (the same on every rank)."""
    ranks = [shard_model(model, tp, r) for r in range(tp)]
    return [m for m, _ in ranks], ranks[0][1]
