"""Predicted latency of one transformer forward step on GPUs, op by op from the model's architecture facts.

A step runs `new_tokens` new tokens for each of `batch` sequences that already hold `context` tokens of KV
cache (prefill: new_tokens = prompt, context = 0; decode: new_tokens = 1). With tensor parallelism over
`n_gpus` GPUs (Megatron style) each GPU holds 1/n of the heads, of the MLP width and of the vocabulary, and
two all-reduces per layer join the partial outputs. Every op is one kernel in a stream (`isolated=False`:
launch + work, no lone-launch floor), the way back-to-back kernels of an eager forward pass run.

Per layer: norm, q/k/v projections, rotary embedding (decoders), attention, o projection, all-reduce,
residual add, norm, MLP (gate/up/down with an activation for gated families; fc1/act/fc2 otherwise;
mixture-of-experts: router, then the active experts as one grouped GEMM per projection, plus the shared experts
as one gated MLP; an MoE model's dense layers (`dense_layers` of ModelFacts) run their own gated MLP), all-reduce,
residual add. Around the layers: embedding gather, final norm and the LM head (last token of each sequence
by default, as serving engines compute; `logits="all"` for a plain forward that scores every position).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

from trnsim.gpu.errors import GpuError
from trnsim.gpu.model import GpuModel
from trnsim.gpu.precision import precision_of

# Families whose MLP is gated (gate and up projections, an activation multiplied in, a down projection).
GATED_MLP_FAMILIES = frozenset({"llama", "mistral", "qwen2", "mixtral", "qwen3", "gemma", "gemma2", "phi3"})


class ModelShape(Protocol):
    """The architecture facts the step model reads (trnsim.models.ModelFacts provides them)."""

    @property
    def model_type(self) -> str: ...
    @property
    def n_layers(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def n_heads(self) -> int: ...
    @property
    def n_kv_heads(self) -> int: ...
    @property
    def head_dim(self) -> int: ...
    @property
    def intermediate_size(self) -> int: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def n_experts(self) -> int: ...
    @property
    def experts_per_token(self) -> int: ...
    @property
    def is_decoder(self) -> bool: ...
    @property
    def dense_layers(self) -> int: ...
    @property
    def dense_intermediate_size(self) -> int: ...
    @property
    def shared_expert_size(self) -> int: ...


@dataclass(frozen=True)
class OpTime:
    """One kind of kernel in the step: its name, how many run, and the seconds of each."""

    name: str
    count: int
    seconds_each: float
    flops_each: float = 0.0  # the matmul FLOPs of one (GEMMs only; 0 for memory-bound kernels)

    @property
    def seconds(self) -> float:
        return self.count * self.seconds_each


def _check(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise GpuError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def gpu_step_ops(
    facts: ModelShape,
    gpu: GpuModel | str,
    n_gpus: int,
    batch: int,
    new_tokens: int,
    context: int,
    *,
    dtype: str = "bfloat16",
    logits: Literal["last", "all"] = "last",
    kernel_overhead_s: float | None = None,
) -> list[OpTime]:
    """The step's kernels with their predicted times (per GPU; all GPUs run the same kernels in parallel)."""
    model = gpu if isinstance(gpu, GpuModel) else GpuModel.from_preset(gpu)
    n = _check("n_gpus", n_gpus, 1)
    batch = _check("batch", batch, 1)
    new_tokens = _check("new_tokens", new_tokens, 1)
    context = _check("context", context, 0)
    if kernel_overhead_s is not None and kernel_overhead_s < 0:
        raise GpuError(f"kernel_overhead_s must be >= 0, got {kernel_overhead_s}")
    # Each kernel in the stream pays the fitted launch_s unless the caller knows better (e.g. CUDA graphs).
    relaunch = 0.0 if kernel_overhead_s is None else kernel_overhead_s - model.curves.memory.launch_s
    if logits not in ("last", "all"):
        raise GpuError(f"logits must be 'last' or 'all', got {logits!r}")
    if n > model.spec.instance.gpus:
        raise GpuError(
            f"tensor parallelism over NVLink stays inside one {model.spec.instance.name} "
            f"({model.spec.instance.gpus} GPUs); got n_gpus={n}"
        )
    if not facts.is_decoder and context:
        raise GpuError(f"{facts.model_type} is an encoder (no KV cache): context must be 0, got {context}")
    elt = precision_of(dtype).bytes
    layers = facts.n_layers
    h = facts.hidden_size
    tokens = batch * new_tokens
    heads = math.ceil(facts.n_heads / n)
    kv_heads = math.ceil(facts.n_kv_heads / n)  # fewer KV heads than GPUs: each GPU keeps a copy of one
    if heads % kv_heads:
        heads = math.ceil(heads / kv_heads) * kv_heads  # uneven split: the busiest GPU sets the pace
    hd = facts.head_dim
    inter = math.ceil(facts.intermediate_size / n)
    gated = facts.model_type in GATED_MLP_FAMILIES

    def gemm(m: int, nn: int, k: int, groups: int = 1) -> float:
        return model.gemm_time_s(m, nn, k, dtype, groups, isolated=False) + relaunch

    def stream(nbytes: float) -> float:
        return model.memory_time_s(nbytes, isolated=False) + relaunch

    ops: list[OpTime] = []

    def add(name: str, count: int, seconds_each: float, flops_each: float = 0.0) -> None:
        if count:
            ops.append(OpTime(name, count, seconds_each, flops_each))

    def add_gemm(name: str, count: int, m: int, nn: int, k: int, groups: int = 1) -> None:
        add(name, count, gemm(m, nn, k, groups), 2.0 * m * nn * k * groups)

    add("embedding", 1, stream(2 * tokens * h * elt))
    add("norm", 2 * layers, stream(2 * tokens * h * elt))
    add_gemm("q_proj", layers, tokens, heads * hd, h)
    add_gemm("k_proj+v_proj", 2 * layers, tokens, kv_heads * hd, h)
    if facts.is_decoder:
        add("rope", layers, stream(2 * tokens * (heads + kv_heads) * hd * elt))
    attention = model.attention_time_s(
        batch, heads, kv_heads, new_tokens, context + new_tokens, hd, facts.is_decoder, dtype, isolated=False
    )
    add("attention", layers, attention + relaunch)
    add_gemm("o_proj", layers, tokens, h, heads * hd)
    add("residual_add", 2 * layers, stream(3 * tokens * h * elt))
    if n > 1:
        add("all_reduce", 2 * layers, model.allreduce_time_s(tokens * h * elt, n))

    def gated_mlp(prefix: str, count: int, width: int) -> None:
        add_gemm(f"{prefix}_gate+up", 2 * count, tokens, width, h)
        add(f"{prefix}_act", count, stream(3 * tokens * width * elt))  # act(gate) * up: two reads, one write
        add_gemm(f"{prefix}_down", count, tokens, h, width)

    if facts.n_experts > 1:
        dense_layers = min(layers, facts.dense_layers)  # (a layer-reduced copy may keep fewer layers)
        moe_layers = layers - dense_layers
        # Experts see tokens * k assignments; assume an even spread over the experts those assignments reach.
        assignments = tokens * facts.experts_per_token
        active = min(facts.n_experts, assignments)
        per_expert = math.ceil(assignments / active)
        add_gemm("router", moe_layers, tokens, facts.n_experts, h)
        add_gemm("expert_gate+up", 2 * moe_layers, per_expert, inter, h, active)
        add("expert_act", moe_layers, stream(3 * assignments * inter * elt))
        add_gemm("expert_down", moe_layers, per_expert, h, inter, active)
        add("expert_combine", moe_layers, stream((facts.experts_per_token + 1) * tokens * h * elt))
        if facts.shared_expert_size:  # every token also runs the shared experts (one gated MLP of their width)
            gated_mlp("shared_expert", moe_layers, math.ceil(facts.shared_expert_size / n))
        if dense_layers:  # the layers that keep a plain MLP (DeepSeek's first three, Llama-4's interleave)
            gated_mlp("mlp", dense_layers, math.ceil(facts.dense_intermediate_size / n))
    elif gated:
        gated_mlp("mlp", layers, inter)
    else:
        add_gemm("mlp_fc1", layers, tokens, inter, h)
        add("mlp_act", layers, stream(2 * tokens * inter * elt))
        add_gemm("mlp_fc2", layers, tokens, h, inter)

    add("final_norm", 1, stream(2 * tokens * h * elt))
    if facts.vocab_size:
        rows = batch if logits == "last" else tokens
        add_gemm("lm_head", 1, rows, math.ceil(facts.vocab_size / n), h)
    return ops


def gpu_step_time_s(
    facts: ModelShape,
    gpu: GpuModel | str,
    n_gpus: int,
    batch: int,
    new_tokens: int,
    context: int,
    *,
    dtype: str = "bfloat16",
    logits: Literal["last", "all"] = "last",
    kernel_overhead_s: float | None = None,
) -> float:
    """Predicted seconds of one forward step (see the module docstring for what a step holds).

    kernel_overhead_s replaces the fitted per-kernel launch_s (measured on lone launches) for every kernel
    of the step, e.g. for CUDA-graph serving where back-to-back kernels start sooner.
    """
    ops = gpu_step_ops(
        facts,
        gpu,
        n_gpus,
        batch,
        new_tokens,
        context,
        dtype=dtype,
        logits=logits,
        kernel_overhead_s=kernel_overhead_s,
    )
    return sum(op.seconds for op in ops)
