"""Turning a preset name, a config.json path or a folder into a transformers PretrainedConfig."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import TYPE_CHECKING

from trnsim.models.errors import ModelConfigError, ModelError
from trnsim.models.registry import CONFIG_DIR, config_field_line, read_config_json, resolve_config_path

if TYPE_CHECKING:
    from transformers import PretrainedConfig


def load_config(name_or_path: str | Path) -> PretrainedConfig:
    """A preset name or alias (case-insensitive), a path to a Hugging Face config.json, or a folder holding one.

    Unknown names raise UnknownModelError listing the presets; malformed files raise ModelConfigError naming
    the file and line. The config's `name_or_path` is set to the preset name or the file's path.
    """
    path = resolve_config_path(name_or_path)
    data = read_config_json(path)
    model_type = data.get("model_type")
    if not isinstance(model_type, str):
        raise ModelConfigError(
            f'{config_field_line(path, "model_type")}: a config.json needs a "model_type" string '
            '(e.g. "llama", "gpt2", "bert") naming its transformers model family'
        )
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        raise ModelConfigError(
            f"{config_field_line(path, 'model_type')}: transformers does not know model_type {model_type!r}"
        )
    try:
        config = CONFIG_MAPPING[model_type].from_dict(data)
    except Exception as exc:  # transformers raises many types for bad values; all mean "this file is wrong"
        message = str(exc).strip().replace("\n", " ")
        field = re.search(r"field '(\w+)'", message)
        where = config_field_line(path, field.group(1)) if field else str(path)
        raise ModelConfigError(f"{where}: invalid {model_type} config: {message}") from None
    config.name_or_path = path.stem if path.parent == CONFIG_DIR else str(path)
    return config


def resolve_config(model: str | Path | PretrainedConfig) -> PretrainedConfig:
    """Accept a name, a path or a config object (returned as is)."""
    if isinstance(model, str | Path):
        return load_config(model)
    from transformers import PretrainedConfig

    if isinstance(model, PretrainedConfig):
        return model
    raise ModelError(
        f"expected a model name, a config.json path or a transformers PretrainedConfig, got {type(model).__name__}"
    )


def with_num_layers(config: PretrainedConfig, num_layers: int) -> PretrainedConfig:
    """A copy of `config` with `num_layers` transformer layers (for small tests of big architectures)."""
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ModelError(f"num_layers must be a positive integer, got {num_layers!r}")
    new = copy.deepcopy(config)
    new.num_hidden_layers = num_layers  # attribute_map makes this n_layer for GPT-2
    layer_types = getattr(new, "layer_types", None)
    if isinstance(layer_types, list):
        # Per-layer attention types (Qwen2 and others) must have one entry per layer.
        if num_layers > len(layer_types):
            raise ModelError(
                f"num_layers={num_layers} is more than the {len(layer_types)} layers whose types the config lists; "
                f"use at most {len(layer_types)}"
            )
        new.layer_types = layer_types[:num_layers]
    return new
