"""Building a model from transformers' own classes, with random weights (none at all on the meta device)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from trnsim.gc_control import paused
from trnsim.models.config import resolve_config, with_num_layers
from trnsim.models.errors import ModelError

if TYPE_CHECKING:
    from transformers import PretrainedConfig

TASKS = ("auto", "causal-lm", "base")

# torch.nn.init's in-place fills, which module constructors (nn.Linear.reset_parameters, nn.Embedding, norms) call
_INIT_FILLS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
    "sparse_",
)


@contextlib.contextmanager
def no_init_fills() -> Iterator[None]:
    """For a model built on the meta device: torch.nn.init's fills return their tensor untouched. A meta tensor
    has no values to fill, so the model (parameter names, shapes, dtypes, tying, buffers) is the same; what is
    saved is the fills' dispatch through the device mode, about half of building a 126-layer model. Patches the
    torch.nn.init module for the duration (not thread-safe: build models on the meta device one thread at a time).
    """
    import torch.nn.init as init

    # Modules that copy the fills when first imported must be imported before the patch, or they keep the no-op
    # for good: transformers.initialization records torch.nn.init's functions in TORCH_INIT_FUNCTIONS at import,
    # and building the first model of a process imports it. Imported inside the patch, every later model in the
    # process (on the CPU too) kept uninitialised weights: NaN outputs and garbage router indices.
    import transformers.initialization  # noqa: F401

    def keep(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        return tensor

    saved = {name: getattr(init, name) for name in _INIT_FILLS if hasattr(init, name)}
    try:
        for name in saved:
            setattr(init, name, keep)
        yield
    finally:
        for name, fill in saved.items():
            setattr(init, name, fill)


def is_causal_lm(config: PretrainedConfig) -> bool:
    """Whether "auto" builds a causal LM: the config's architectures say so (…ForCausalLM, …LMHeadModel), or,
    with no architectures listed, transformers has a causal-LM class for the family and no masked-LM one."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    architectures = getattr(config, "architectures", None) or []
    if architectures:
        return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
    family = config.model_type
    return family in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and family not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def resolve_task(config: PretrainedConfig, task: str) -> str:
    if task not in TASKS:
        raise ModelError(f"unknown task {task!r}; allowed: {', '.join(TASKS)}")
    if task == "auto":
        return "causal-lm" if is_causal_lm(config) else "base"
    return task


@paused()  # transformers, the family's modeling code (the first build imports them) and the model all stay
def build_model(
    model: str | Path | PretrainedConfig,
    device: str | torch.device = "meta",
    dtype: torch.dtype = torch.bfloat16,
    task: str = "auto",
    num_layers: int | None = None,
) -> torch.nn.Module:
    """Build `model` (preset name, config.json path/folder, or PretrainedConfig) in eval mode.

    task "auto": AutoModelForCausalLM for decoders (GPT-2, Llama, Mistral, Mixtral, Qwen2), AutoModel for
    encoders (BERT, MiniLM -> BertModel; ViT -> ViTModel); "causal-lm" or "base" force one. On the default
    "meta" device no memory is allocated for weights, so a 405B model builds in about a second. On a real
    device the weights are transformers' random initialisation. `num_layers` overrides the layer count.
    """
    from transformers import AutoModel, AutoModelForCausalLM

    config = resolve_config(model)
    if num_layers is not None:
        config = with_num_layers(config, num_layers)
    resolved = resolve_task(config, task)
    auto_class = AutoModelForCausalLM if resolved == "causal-lm" else AutoModel
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelError(f"invalid device {device!r}: {exc}") from None
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ModelError(f"dtype must be a floating-point torch.dtype (e.g. torch.bfloat16), got {dtype!r}")
    skip_fills = no_init_fills() if target.type == "meta" else contextlib.nullcontext()
    try:
        with target, skip_fills:
            module = auto_class.from_config(config, dtype=dtype)
    except ValueError as exc:  # e.g. a family with no class for the task
        raise ModelError(f"cannot build {config.model_type} as {resolved}: {exc}") from None
    return module.eval()
