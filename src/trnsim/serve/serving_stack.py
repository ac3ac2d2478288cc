"""What the Neuron serving stacks do to a step beyond the model's kernels: sequence-length buckets.

Neuron compiles static shapes, so transformers-neuronx (trn1, inf2) and NxD Inference (trn2) compile one graph
per *bucket* and pad every step to the smallest bucket that holds it:

- context encoding (prefill) pads each prompt to the next context bucket: a 1,500-token prompt in the 2,048
  bucket costs a 2,048-token prefill;
- token generation (decode) attends over the next token-generation bucket of the KV length, not the exact
  length (the cache is a static tensor and the bucket says how much of it a step reads).

Both stacks default to powers of two from 128 up to the sequence length, the sequence length itself being the
last bucket (serving_stack.toml, with the documents it comes from); a deployment can list its own buckets.

`ServingStack.wrap(step_cost)` lays this over any step cost: a prefill step (new tokens > batch) is priced at
its padded prompt length, a decode step (one token per sequence) at its bucketed context. The stacks run
context encoding and token generation as separate graphs, so a mixed step (chunked prefill) is priced as the
prefill it holds, padded; that is an approximation for schedulers the stacks do not run.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from trnsim.serve.errors import ServeError

STACK_FILE = Path(__file__).with_name("serving_stack.toml")


class _StepCost(Protocol):
    def step_time_s(self, batch: int, new_tokens: int, context: float) -> float: ...


def power_of_two_buckets(start: int, seq_len: int) -> tuple[int, ...]:
    """start, 2 start, 4 start, ... below seq_len, then seq_len itself (the stacks' default bucket list)."""
    if start < 1 or seq_len < 1:
        raise ServeError(f"buckets need a start >= 1 and a sequence length >= 1, got {start} and {seq_len}")
    buckets = []
    size = start
    while size < seq_len:
        buckets.append(size)
        size *= 2
    return (*buckets, seq_len)


def bucket_of(length: float, buckets: tuple[int, ...]) -> float:
    """The smallest bucket holding `length`; a length beyond the largest bucket stays as it is (the stacks
    refuse it; trnsim prices it unpadded rather than failing a run that only touches it)."""
    for size in buckets:
        if length <= size:
            return float(size)
    return float(length)


@dataclass(frozen=True)
class ServingStack:
    """A serving stack's bucketing: the sorted context-encoding and token-generation bucket sizes (tokens)."""

    name: str
    context_buckets: tuple[int, ...]
    token_buckets: tuple[int, ...]

    def __post_init__(self) -> None:
        for label, buckets in (("context", self.context_buckets), ("token-generation", self.token_buckets)):
            if not buckets or any(b < 1 for b in buckets) or list(buckets) != sorted(set(buckets)):
                raise ServeError(
                    f"{self.name}: {label} buckets must be increasing positive token counts, got {list(buckets)}"
                )

    def padded_step(self, batch: int, new_tokens: int, context: float) -> tuple[int, int, float]:
        """The (batch, new tokens, context) the stack's compiled graph actually runs for a step."""
        if new_tokens <= batch:  # token generation: one token per sequence over the bucketed KV length
            return batch, new_tokens, bucket_of(math.ceil(context), self.token_buckets)
        per_sequence = math.ceil(new_tokens / batch)  # context encoding: each prompt padded to its bucket
        padded = bucket_of(per_sequence, self.context_buckets)
        return batch, int(batch * padded), max(padded, float(context))

    def wrap(self, step_cost: _StepCost) -> BucketedStepCost:
        return BucketedStepCost(step_cost, self)


@dataclass(frozen=True)
class BucketedStepCost:
    """A step cost priced at the shapes `stack` pads each step to."""

    inner: _StepCost
    stack: ServingStack

    def step_time_s(self, batch: int, new_tokens: int, context: float) -> float:
        return self.inner.step_time_s(*self.stack.padded_step(batch, new_tokens, context))


def _stack_table() -> dict[str, dict[str, object]]:
    return tomllib.loads(STACK_FILE.read_text())


def default_stack(stack: str, seq_len: int) -> ServingStack:
    """`stack` ("transformers-neuronx" or "nxd-inference") with its documented default buckets for `seq_len`."""
    table = _stack_table()
    if stack not in table:
        raise ServeError(f"unknown serving stack {stack!r}; known: {', '.join(sorted(table))}")
    entry = table[stack]
    start_ctx = int(entry["context_bucket_start"])  # type: ignore[call-overload]
    start_tok = int(entry["token_bucket_start"])  # type: ignore[call-overload]
    return ServingStack(stack, power_of_two_buckets(start_ctx, seq_len), power_of_two_buckets(start_tok, seq_len))


def stack_for(kind: str, seq_len: int, context_buckets: str = "pow2", token_buckets: str = "pow2") -> ServingStack:
    """The stack AWS serves on instance family `kind` (trn1, inf2: transformers-neuronx; trn2, trn3: NxD
    Inference) at `seq_len`, with explicit buckets ("2048 4096 ...") or the defaults ("pow2")."""
    table = _stack_table()
    families = {family: name for name, entry in table.items() for family in entry["families"]}  # type: ignore[attr-defined]
    if kind not in families:
        raise ServeError(f"no Neuron serving stack is known for {kind!r}; known: {', '.join(sorted(families))}")
    base = default_stack(families[kind], seq_len)

    def parse(text: str, default: tuple[int, ...]) -> tuple[int, ...]:
        if text.strip() == "pow2":
            return default
        try:
            return tuple(int(t) for t in text.split())
        except ValueError:
            raise ServeError(f"buckets must be 'pow2' or token counts separated by spaces, got {text!r}") from None

    return ServingStack(
        base.name, parse(context_buckets, base.context_buckets), parse(token_buckets, base.token_buckets)
    )
