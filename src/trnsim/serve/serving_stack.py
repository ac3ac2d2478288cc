"""What the Neuron serving stacks do to a step beyond the model's kernels.

Neuron compiles static shapes, so transformers-neuronx (trn1, inf2) and NxD Inference (trn2) compile one graph
per *bucket* and pad every step to the smallest bucket that holds it:

- context encoding (prefill) pads each prompt to the next context bucket: a 1,500-token prompt in the 2,048
  bucket costs a 2,048-token prefill;
- token generation (decode) attends over the next token-generation bucket of the KV length, not the exact
  length (the cache is a static tensor and the bucket says how much of it a step reads).

Token-generation buckets are powers of two from 128 up to the sequence length, the sequence length itself
being the last. Context buckets are half of those on transformers-neuronx and powers of two from 128 on NxD
Inference; a deployment can list its own (serving_stack.toml, with the documents each comes from).
transformers-neuronx runs prompt tokens past its largest context bucket one at a time through the
token-generation graph, and (at Neuron 2.18, the published benchmarks' release) computes context attention
unfused, every pair through HBM (serve/stack_attention.py).

`ServingStack.wrap(step_cost)` lays this over any step cost: a prefill step (new tokens > batch) is priced at
its padded prompt length, a decode step (one token per sequence) at its bucketed context, and a continuous-batching
prefill step of prompts of different lengths (`prefill_step_time_s`) with each prompt at its own bucket. The stacks
run context encoding and token generation as separate graphs, so a mixed step (chunked prefill) has no stack
shape: `simulate` refuses chunked prefill on a stack (serve/stack_choice.py picks exact shapes for it under auto).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from trnsim.serve.errors import ServeError
from trnsim.serve.stack_attention import UnfusedContextAttention
from trnsim.serve.stack_hsb_norm import HsbNormSaving
from trnsim.serve.stack_kernel_layout import PROJECTIONS, KernelWeightLayout
from trnsim.serve.stack_sequence_parallel import SequenceParallelSaving

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


CONTEXT_ATTENTION = ("flash", "unfused")


@dataclass(frozen=True)
class ServingStack:
    """A serving stack's step behaviour: the sorted context-encoding and token-generation bucket sizes (tokens);
    whether prompt tokens past the largest context bucket run one at a time through token generation
    (`leftover_by_token_generation`); how context attention is computed ("flash": on chip, causal pairs
    only, as trnsim's step cost prices it; "unfused": every pair through HBM, serve/stack_attention.py); and
    whether context encoding runs sequence-parallel (`sequence_parallel`, serve/stack_sequence_parallel.py); and
    which projections' weights the deployment's kernels store K-major (`kernel_weights`: "qkv", "mlp";
    serve/stack_kernel_layout.py); and whether decode RMSNorms run on hidden-major activations
    (`hidden_major_norms`, serve/stack_hsb_norm.py)."""

    name: str
    context_buckets: tuple[int, ...]
    token_buckets: tuple[int, ...]
    leftover_by_token_generation: bool = False
    context_attention: str = "flash"
    sequence_parallel: bool = False
    kernel_weights: tuple[str, ...] = ()
    hidden_major_norms: bool = False

    def __post_init__(self) -> None:
        for label, buckets in (("context", self.context_buckets), ("token-generation", self.token_buckets)):
            if not buckets or any(b < 1 for b in buckets) or list(buckets) != sorted(set(buckets)):
                raise ServeError(
                    f"{self.name}: {label} buckets must be increasing positive token counts, got {list(buckets)}"
                )
        if self.context_attention not in CONTEXT_ATTENTION:
            raise ServeError(
                f"{self.name}: context_attention must be one of {', '.join(CONTEXT_ATTENTION)}, "
                f"got {self.context_attention!r}"
            )

    def padded_step(self, batch: int, new_tokens: int, context: float) -> tuple[int, int, float]:
        """The (batch, new tokens, context) the stack's compiled graph actually runs for a step. A prompt past the
        largest context bucket gives that bucket's step when the stack encodes the rest token by token."""
        if new_tokens <= batch:  # token generation: one token per sequence over the bucketed KV length
            return batch, new_tokens, bucket_of(math.ceil(context), self.token_buckets)
        per_sequence = math.ceil(new_tokens / batch)  # context encoding: each prompt padded to its bucket
        largest = self.context_buckets[-1]
        if self.leftover_by_token_generation and per_sequence > largest:  # the largest bucket, then token by token
            return batch, batch * largest, float(largest)
        padded = bucket_of(per_sequence, self.context_buckets)
        return batch, int(batch * padded), max(padded, float(context))

    def leftover_positions(self, batch: int, new_tokens: int) -> range:
        """Cache positions (0-based) of the prompt tokens the token-generation graph encodes one at a time."""
        per_sequence = math.ceil(new_tokens / batch)
        if new_tokens <= batch or not self.leftover_by_token_generation:
            return range(0)
        return range(min(per_sequence, self.context_buckets[-1]), per_sequence)

    def wrap(self, step_cost: _StepCost) -> BucketedStepCost:
        """`step_cost` priced at this stack's shapes. Unfused context attention, sequence parallelism and kernel
        weight layouts need the compiler's step components (`step_cost.components()`, as `estimated_step_cost`
        gives on Trainium); a step cost without them keeps its own attention, norms and layouts."""
        attention = saving = layout = norms = None
        components = getattr(step_cost, "components", None)
        parts = components() if components is not None else None
        if getattr(parts, "spec", None) is not None:  # the compiler's step components on a Trainium target
            if self.context_attention == "unfused":
                attention = UnfusedContextAttention(parts)
            if self.sequence_parallel:
                saving = SequenceParallelSaving(parts)
            if self.kernel_weights:
                layout = KernelWeightLayout(parts, self.kernel_weights)
            if self.hidden_major_norms:
                norms = HsbNormSaving(parts)
        return BucketedStepCost(step_cost, self, attention, saving, layout, norms)


@dataclass(frozen=True)
class BucketedStepCost:
    """A step cost priced at the shapes `stack` pads each step to, with its context attention."""

    inner: _StepCost
    stack: ServingStack
    attention: UnfusedContextAttention | None = None
    sequence_parallel: SequenceParallelSaving | None = None
    kernel_layout: KernelWeightLayout | None = None
    hidden_major_norms: HsbNormSaving | None = None

    def step_time_s(self, batch: int, new_tokens: int, context: float) -> float:
        b, n, c = self.stack.padded_step(batch, new_tokens, context)
        seconds = self._padded_step_s(b, n, c)
        for position in self.stack.leftover_positions(batch, new_tokens):
            seconds += self.inner.step_time_s(batch, batch, bucket_of(position + 1, self.stack.token_buckets))
        return seconds

    def prefill_step_time_s(self, prompts: Sequence[int], known: Sequence[int]) -> float:
        """A prefill step of separate prompts (continuous batching): `prompts` are the tokens each sequence
        computes, `known` its KV length after the step. Each prompt is padded to its own context bucket (the
        stacks encode a prompt at its bucket's shape), the step runs their padded sum; prompt tokens past the
        largest bucket then run token by token for the sequences that have them. With equal prompts this is
        step_time_s(batch, batch x prompt, mean known)."""
        stack, b = self.stack, len(prompts)
        if not b or min(prompts) < 1:
            raise ServeError(f"a prefill step needs one or more prompts of >= 1 token, got {list(prompts)}")
        largest = stack.context_buckets[-1]
        leftover = [p for p in prompts if stack.leftover_by_token_generation and p > largest]
        padded, contexts = [], []
        for p, k in zip(prompts, known, strict=True):
            if stack.leftover_by_token_generation and p > largest:  # the largest bucket's graph, then token by token
                padded.append(largest)
                contexts.append(largest)
            else:
                size = int(bucket_of(p, stack.context_buckets))
                padded.append(size)
                contexts.append(max(size, k))
        n = sum(padded)
        seconds = self._padded_step_s(b, n, sum(contexts) / b)
        for position in range(largest, max(leftover, default=largest)):
            active = sum(1 for p in leftover if p > position)
            seconds += self.inner.step_time_s(active, active, bucket_of(position + 1, stack.token_buckets))
        return seconds

    def _padded_step_s(self, b: int, n: int, c: float) -> float:
        """The step at the stack's shape (b, n, c): the inner cost with the stack's attention, sequence
        parallelism, kernel weight layouts and norms."""
        seconds = self.inner.step_time_s(b, n, c)
        if n > b and self.attention is not None:
            seconds += self._unfused_minus_flash_s(b, n, c)
        if n > b and self.sequence_parallel is not None:
            seconds -= self.sequence_parallel.seconds(n)
        if n > b and self.kernel_layout is not None:
            seconds -= self.kernel_layout.seconds(n)
        if n <= b and self.hidden_major_norms is not None:
            seconds -= self.hidden_major_norms.seconds(n)
        return seconds

    def _unfused_minus_flash_s(self, batch: int, new_tokens: int, context: float) -> float:
        """What unfused context attention adds to a prefill step over the flash attention the step cost holds:
        every layer, every sequence, all queries x all keys of the padded prompt."""
        assert self.attention is not None
        parts = self.attention.parts
        c = max(1, round(context))
        flash = parts.decode_attention_s(batch, c) + parts.prefill_attention_s(new_tokens - batch, c)
        unfused = batch * self.attention.seconds(new_tokens // batch, c)
        return parts.shape.layers * (unfused - flash)


def _stack_table() -> dict[str, dict[str, object]]:
    return tomllib.loads(STACK_FILE.read_text())


def known_stacks() -> tuple[str, ...]:
    """The serving stacks serving_stack.toml describes."""
    return tuple(_stack_table())


def stack_family(accelerator: str) -> str | None:
    """The stack AWS documents for the Neuron chip `accelerator` ("trn2" -> "nxd-inference"), or None."""
    for name, entry in _stack_table().items():
        if accelerator in entry["families"]:  # type: ignore[operator]
            return name
    return None


def default_stack(stack: str, seq_len: int) -> ServingStack:
    """`stack` ("transformers-neuronx" or "nxd-inference") with its documented default buckets for `seq_len`."""
    table = _stack_table()
    if stack not in table:
        raise ServeError(f"unknown serving stack {stack!r}; known: {', '.join(sorted(table))}")
    entry: dict[str, Any] = table[stack]
    token = power_of_two_buckets(int(entry["token_bucket_start"]), seq_len)
    if entry.get("context_buckets") == "half_of_token_buckets":
        context = tuple(sorted({max(1, b // 2) for b in token}))
    else:
        context = power_of_two_buckets(int(entry["context_bucket_start"]), seq_len)
    return ServingStack(
        stack,
        context,
        token,
        leftover_by_token_generation=bool(entry.get("leftover_by_token_generation", False)),
        hidden_major_norms=bool(entry.get("hidden_major_norms", False)),
        context_attention=str(entry.get("context_attention", "flash")),
    )


def stack_for(
    kind: str,
    seq_len: int,
    context_buckets: str = "pow2",
    token_buckets: str = "pow2",
    *,
    sequence_parallel: bool = False,
    kernel_weights: tuple[str, ...] = (),
) -> ServingStack:
    """The stack AWS serves on instance family `kind` (trn1, inf2: transformers-neuronx; trn2, trn3: NxD
    Inference) at `seq_len`, with explicit buckets ("2048 4096 ...") or the defaults ("pow2").
    sequence_parallel: the deployment compiles context encoding sequence-parallel (NxD Inference's
    `sequence_parallel_enabled`, off by default there; transformers-neuronx has no such option).
    kernel_weights: the projections whose NKI kernels the deployment enables, which store their weights K-major
    ("qkv": `qkv_kernel_enabled`, "mlp": `mlp_kernel_enabled`; NxD Inference only)."""
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

    if (sequence_parallel or kernel_weights) and base.name != "nxd-inference":
        raise ServeError(
            f"sequence parallelism and kernel weight layouts are NxD Inference options; {kind} is served by {base.name}"
        )
    unknown = set(kernel_weights) - set(PROJECTIONS)
    if unknown:
        raise ServeError(f"unknown kernel_weights {sorted(unknown)}; known: {', '.join(PROJECTIONS)}")
    return replace(
        base,
        context_buckets=parse(context_buckets, base.context_buckets),
        token_buckets=parse(token_buckets, base.token_buckets),
        sequence_parallel=sequence_parallel,
        kernel_weights=tuple(kernel_weights),
    )
