"""One decode step of a Hugging Face decoder: `batch` sequences each add one token over a KV cache of `context`.

The step is priced with the same parts a serving step uses (trnsim.serve.step_components), so `trnsim estimate
--decode` and `trnsim serve` agree on what a decode step costs:

- everything but attention: `trnsim.estimate` of the rank model on the `batch` new tokens packed into one
  sequence (linears, norms, rotary, the embedding, the logits of every new token, tp collectives). These ops
  work token by token, so packing changes nothing; the packed graph's own attention (the new tokens attending
  to each other) is not what a decode step does and is taken out.
- attention, per layer: the library decode_attention kernel, one query per sequence over `context` cached keys
  (StepComponents.decode_attention_s, which also extends it linearly beyond the simulated batch); on a GPU
  target the GPU model's attention time for the same shapes.
The KV cache the step reads is added to the rank's resident HBM next to the weights.
"""

from __future__ import annotations

from typing import Any

import torch

from trnsim.errors import CompileError
from trnsim.gpu.spec import GpuSpec
from trnsim.hw.spec import HardwareSpec
from trnsim.runtime.graph_profile import GraphProfile, OpRecord

SDPA = "aten.scaled_dot_product_attention.default"


def check_decode_args(batch: int, context: int) -> None:
    for name, value in (("batch", batch), ("context", context)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CompileError(f"a decode estimate needs {name} >= 1 (an integer), got {value!r}")


def decode_batch(
    example_inputs: Any, example_kwargs: dict[str, Any] | None, decode: bool, context: int | None, training: bool
) -> int:
    """The batch of a decode step given as trnsim.estimate's arguments (input ids [B, 1]), checked."""
    if not decode:
        raise CompileError("context= is the KV-cache length of a decode step; pass decode=True with it")
    if context is None:
        raise CompileError("a decode estimate needs context= (the tokens already in each sequence's KV cache)")
    if training:
        raise CompileError("decode=True estimates an inference step; it cannot be combined with training=True")
    if example_kwargs:
        raise CompileError(f"a decode estimate takes only the input ids; got keyword inputs {sorted(example_kwargs)}")
    ids = example_inputs[0] if len(example_inputs) == 1 else None
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.shape[1] != 1:
        shape = tuple(ids.shape) if isinstance(ids, torch.Tensor) else f"{len(example_inputs)} inputs"
        raise CompileError(f"a decode estimate takes input ids of shape [batch, 1] (one new token each), got {shape}")
    return int(ids.shape[0])


def decode_estimate(
    model: torch.nn.Module,
    batch: int,
    context: int,
    *,
    target: str | HardwareSpec | GpuSpec = "trn2",
    tp: int = 1,
    instance: str | None = None,
    fold_layers: bool = True,
    label: str = "",
    extrapolate: bool | None = None,
) -> GraphProfile:
    """Device time of one decode step of `model` (a Hugging Face decoder, meta tensors are enough)."""
    from trnsim.compiler.estimate import estimate
    from trnsim.compiler.gpu_estimate import is_gpu_target
    from trnsim.serve.step_components import DTYPES, StepComponents

    check_decode_args(batch, context)
    gpu = is_gpu_target(target)
    if gpu and not isinstance(target, str):
        raise CompileError("GPU decode estimates take a GPU preset name (h100, h200, b200), not a GpuSpec object")
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "num_attention_heads"):
        raise CompileError(
            f"a decode estimate needs a Hugging Face decoder (a model with .config), got {type(model).__name__}"
        )
    dtype = _dtype_name(model)
    if dtype not in DTYPES:
        raise CompileError(f"decode estimates run in {', '.join(DTYPES)}; {type(model).__name__} is in {dtype}")
    name = label or type(model).__name__
    ids = torch.zeros(1, batch, dtype=torch.long, device="meta")
    profile = estimate(
        model,
        (ids,),
        target=target,
        tp=tp,
        instance=instance,
        fold_layers=fold_layers,
        label=name,
        extrapolate=extrapolate,
    )
    step_target: str | HardwareSpec = target if isinstance(target, str) and gpu else profile.spec
    parts = StepComponents(config, step_target, tp, instance, dtype)
    s = parts.shape
    profile.records = [r for r in profile.records if r.op != SDPA]
    kv_bytes = 2 * batch * s.kv_heads * context * s.head_dim * DTYPES[dtype]  # one layer's K and V, this rank
    profile.records.append(
        OpRecord(
            node="decode_attention",
            op=SDPA,
            kind="kernel",
            kernel="gpu_decode_attention" if gpu else "decode_attention",
            device_us=parts.decode_attention_s(batch, context) * 1e6,
            flops=4 * batch * s.heads * context * s.head_dim,  # q.k and p.v, 2 flops per multiply-add
            hbm_bytes=kv_bytes,
            count=s.layers,
            shapes=f"q [{batch}, {s.heads}, {s.head_dim}], kv [{batch}, {s.kv_heads}, {context}, {s.head_dim}]",
        )
    )
    if profile.weight_bytes:  # (GPU estimates do not track resident bytes)
        profile.weight_bytes += kv_bytes * s.layers  # the KV cache stays resident next to the weights
    profile.label = f"{name} decode step"
    return profile


def _dtype_name(model: torch.nn.Module) -> str:
    p = next(iter(model.parameters()), None)
    return str(p.dtype).removeprefix("torch.") if p is not None else "bfloat16"
