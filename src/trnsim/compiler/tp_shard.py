"""One tensor-parallel rank's copy of a Hugging Face decoder, with its slice of every weight.

The rule is tensor_parallel.py's (Megatron-style, as the estimate prices it): query heads padded up to a
multiple of tp and split, KV heads replicated when fewer than tp (or padded), the MLP's intermediate size
and the vocabulary (LM head) split in ceil(n / tp) slices; attention output and MLP down projections are
row-parallel (their partial sums are all-reduced), the LM head's logits are all-gathered. Padded heads and
columns get zero weights, so they add nothing. The embedding stays whole on every rank (a lookup costs the
rows it reads, not the table's size). Biases of row-parallel projections stay on rank 0 only: they are
added once, before the all-reduce.

This module holds the cutting tools (which global head each slot holds, blocks and spans of a weight, the
record of which weights end in which collective); tp_families.py applies them to each family's layout and
`tp_families.shard_model(model, tp, rank)` returns a rank's deep copy with sliced weights (real tensors for
compiled runs, meta tensors for estimates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from trnsim.compiler.tp_heads import WeightRoles, local_heads
from trnsim.errors import CompileError

ROW = "all_reduce"  # a row-parallel projection: partial sums all-reduced
VOCAB = "all_gather"  # the LM head: vocabulary slices all-gathered


@dataclass
class ShardRoles(WeightRoles):
    """Weights (module path + '.weight') whose linear ends in a collective, and the vocabulary sizes."""

    vocab: int = 0
    vocab_local: int = 0


@dataclass(frozen=True)
class HeadSplit:
    """Which global heads one rank's head slots hold (None: a padding slot with zero weights)."""

    heads: int
    kv_heads: int
    tp: int

    @property
    def local(self) -> tuple[int, int]:
        return local_heads(self.heads, self.kv_heads, self.tp)

    def q_slots(self, rank: int) -> list[int | None]:
        q, _ = self.local
        return [g if g < self.heads else None for g in range(rank * q, (rank + 1) * q)]

    def kv_slots(self, rank: int) -> list[int | None]:
        """The global KV head of each local KV slot: the one its group of local query heads reads."""
        q, kv = self.local
        group, share = q // kv, self.heads // self.kv_heads
        slots: list[int | None] = []
        qs = self.q_slots(rank)
        for s in range(kv):
            used = {g // share for g in qs[s * group : (s + 1) * group] if g is not None}
            if len(used) > 1:
                raise CompileError(
                    f"tp={self.tp}: rank {rank}'s KV head {s} would serve query heads of KV heads {sorted(used)} "
                    f"({self.heads} query heads padded to {q * self.tp}, {self.kv_heads} KV heads); pick a tp "
                    f"that divides {self.heads} or whose padded heads keep each KV group on one rank"
                )
            slots.append(used.pop() if used else None)
        return slots


def blocks(t: torch.Tensor, dim: int, slots: list[int | None], size: int) -> torch.Tensor:
    """Concatenate t's blocks of `size` along dim, one per slot (zeros for a padding slot)."""
    parts = []
    for s in slots:
        if s is None:
            shape = list(t.shape)
            shape[dim] = size
            parts.append(t.new_zeros(shape))
        else:
            parts.append(t.narrow(dim, s * size, size))
    return torch.cat(parts, dim)


def span(t: torch.Tensor, dim: int, rank: int, tp: int) -> torch.Tensor:
    """Rank's slice of ceil(n / tp) along dim, the tail padded with zeros."""
    n = t.shape[dim]
    size = math.ceil(n / tp)
    return blocks(t, dim, [i if i < n else None for i in range(rank * size, (rank + 1) * size)], 1)


def set_param(module: Any, name: str, value: torch.Tensor) -> None:
    setattr(module, name, torch.nn.Parameter(value.contiguous(), requires_grad=False))


def rank0_bias(module: Any, rank: int) -> None:
    """A row-parallel projection's bias is added once: on rank 0 (zero elsewhere)."""
    bias = getattr(module, "bias", None)
    if isinstance(bias, torch.Tensor) and rank != 0:
        set_param(module, "bias", torch.zeros_like(bias))


@dataclass
class Sharder:
    """Slices the weights of one rank's copy, and remembers which weights end in a collective."""

    tp: int
    rank: int
    roles: ShardRoles
    paths: dict[int, str]  # id(module) -> its path in the model

    def path(self, module: Any) -> str:
        return self.paths[id(module)]

    def linear_rows(self, lin: Any, slots: list[int | None], size: int) -> None:
        """Column-parallel nn.Linear: keep the output rows (and bias) of the given blocks."""
        set_param(lin, "weight", blocks(lin.weight, 0, slots, size))
        if getattr(lin, "bias", None) is not None:
            set_param(lin, "bias", blocks(lin.bias, 0, slots, size))
        lin.out_features = lin.weight.shape[0]

    def linear_cols(self, lin: Any, slots: list[int | None], size: int) -> None:
        """Row-parallel nn.Linear: keep the input columns of the given blocks; all-reduce after it."""
        set_param(lin, "weight", blocks(lin.weight, 1, slots, size))
        lin.in_features = lin.weight.shape[1]
        rank0_bias(lin, self.rank)
        self.roles.collective[self.path(lin) + ".weight"] = ROW

    def span_rows(self, lin: Any) -> None:
        set_param(lin, "weight", span(lin.weight, 0, self.rank, self.tp))
        if getattr(lin, "bias", None) is not None:
            set_param(lin, "bias", span(lin.bias, 0, self.rank, self.tp))
        lin.out_features = lin.weight.shape[0]

    def span_cols(self, lin: Any) -> None:
        set_param(lin, "weight", span(lin.weight, 1, self.rank, self.tp))
        lin.in_features = lin.weight.shape[1]
        rank0_bias(lin, self.rank)
        self.roles.collective[self.path(lin) + ".weight"] = ROW

    def lm_head(self, model: Any) -> None:
        head = model.get_output_embeddings()
        if not isinstance(head, torch.nn.Linear):
            raise CompileError(f"tp={self.tp}: {type(model).__name__} has no linear LM head to split by vocabulary")
        self.roles.vocab = head.weight.shape[0]
        self.roles.vocab_local = math.ceil(self.roles.vocab / self.tp)
        # a tied embedding keeps the whole table: the head gets its own parameter (set_param makes a new one)
        set_param(head, "weight", span(head.weight, 0, self.rank, self.tp))
        if head.bias is not None:
            set_param(head, "bias", span(head.bias, 0, self.rank, self.tp))
        head.out_features = head.weight.shape[0]
        self.roles.collective[self.path(head) + ".weight"] = VOCAB


def head_split(config: Any, tp: int) -> HeadSplit:
    heads = config.num_attention_heads
    return HeadSplit(heads, getattr(config, "num_key_value_heads", None) or heads, tp)
