"""Model presets (HF-format config.json files) and the facts about them that serving and costing need.

from trnsim.models import list_models, load_config, build_model, model_facts
model = build_model("llama-3.1-405b")            # transformers' LlamaForCausalLM on the meta device
facts = model_facts("llama-3.1-70b")             # n_params, heads, kv_bytes_per_token(), ...
"""

from trnsim.models.build import build_model
from trnsim.models.config import load_config
from trnsim.models.errors import ModelConfigError, ModelError, UnknownModelError
from trnsim.models.facts import ModelFacts, model_facts
from trnsim.models.registry import list_models

__all__ = [
    "ModelConfigError",
    "ModelError",
    "ModelFacts",
    "UnknownModelError",
    "build_model",
    "list_models",
    "load_config",
    "model_facts",
]
