"""Name resolution (aliases, paths, folders), layer overrides, and the error for each kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trnsim.errors import TrnsimError
from trnsim.models import (
    ModelConfigError,
    ModelError,
    UnknownModelError,
    build_model,
    list_models,
    load_config,
    model_facts,
)
from trnsim.models.registry import CONFIG_DIR


@pytest.mark.parametrize(
    ("alias", "preset"),
    [
        ("llama-3.1-70b", "llama-3.1-70b"),
        ("llama3.1-70b", "llama-3.1-70b"),
        ("meta-llama/Llama-3.1-70B", "llama-3.1-70b"),
        ("Meta-Llama-3.1-70B", "llama-3.1-70b"),
        ("LLAMA_3_8B", "llama-3-8b"),
        ("meta-llama/Meta-Llama-3-8B", "llama-3-8b"),
        ("meta-llama/Llama-2-7b-hf", "llama-2-7b"),
        ("mistralai/Mistral-7B-v0.1", "mistral-7b"),
        ("Mixtral-8x7B", "mixtral-8x7b"),
        ("Qwen/Qwen2.5-7B", "qwen2.5-7b"),
        ("openai-community/gpt2", "gpt2"),
        ("google-bert/bert-base-uncased", "bert-base-uncased"),
        ("google/vit-base-patch16-224", "vit-base-patch16-224"),
        ("sentence-transformers/all-MiniLM-L6-v2", "all-minilm-l6-v2"),
    ],
)
def test_aliases_resolve(alias: str, preset: str) -> None:
    assert load_config(alias).name_or_path == preset
    assert model_facts(alias).name == preset


def test_presets_have_distinct_hidden_shapes_per_name() -> None:
    # 3 and 3.1 share shapes but not context length; an alias mix-up would show here.
    assert load_config("llama-3-8b").max_position_embeddings == 8192
    assert load_config("llama3.1-8b").max_position_embeddings == 131072


def test_config_json_path_and_folder(tmp_path: Path) -> None:
    data = json.loads((CONFIG_DIR / "mistral-7b.json").read_text()) | {"num_hidden_layers": 3}
    (tmp_path / "config.json").write_text(json.dumps(data))
    by_file = model_facts(tmp_path / "config.json")
    by_folder = model_facts(str(tmp_path))
    assert by_file.n_layers == by_folder.n_layers == 3
    assert by_file.name == str(tmp_path / "config.json")
    full = model_facts("mistral-7b")
    per_layer = (full.n_params - by_file.n_params) // (full.n_layers - 3)
    assert full.n_params == by_file.n_params + per_layer * (full.n_layers - 3)


def test_unknown_name_lists_the_presets() -> None:
    with pytest.raises(UnknownModelError) as info:
        load_config("llama-9-1b")
    assert isinstance(info.value, TrnsimError)
    for name in list_models():
        assert name in str(info.value)


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{\n  "model_type": "llama",\n  "hidden_size": 64,,\n}\n')
    with pytest.raises(ModelConfigError, match=rf"{path}:3:"):
        load_config(path)


def test_bad_field_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{\n  "model_type": "llama",\n  "hidden_size": "wide"\n}\n')
    with pytest.raises(ModelConfigError, match=rf"{path}:3: .*hidden_size"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ('{"hidden_size": 8}', 'needs a "model_type"'),
        ('{"model_type": "no-such-family"}', "does not know model_type"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_other_bad_files(tmp_path: Path, text: str, pattern: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ModelConfigError, match=pattern):
        load_config(path)


def test_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match=r"holds no config\.json"):
        load_config(tmp_path)
    with pytest.raises(ModelConfigError, match="does not exist"):
        load_config(tmp_path / "nope.json")


def test_num_layers_override_and_bad_requests() -> None:
    for name in ("gpt2", "qwen2.5-7b", "llama-3.1-405b", "vit-base-patch16-224"):
        model = build_model(name, num_layers=2)
        layers = [m for m in model.modules() if type(m).__name__.endswith(("Block", "DecoderLayer", "Layer"))]
        assert len(layers) == 2, name
    assert load_config("llama-3.1-405b").num_hidden_layers == 126  # the cached preset is not mutated
    with pytest.raises(ModelError, match="positive integer"):
        build_model("gpt2", num_layers=0)
    with pytest.raises(ModelError, match="at most 28"):
        build_model("qwen2.5-7b", num_layers=29)
    with pytest.raises(ModelError, match="unknown task"):
        build_model("gpt2", task="seq2seq")
    with pytest.raises(ModelError, match="floating-point"):
        build_model("gpt2", dtype=torch.int8)
    with pytest.raises(ModelError, match="PretrainedConfig"):
        model_facts(42)  # type: ignore[arg-type]


def test_base_task_drops_the_lm_head() -> None:
    model = build_model("llama-3-8b", task="base", num_layers=1)
    assert type(model).__name__ == "LlamaModel"


def test_cpu_build_has_real_random_weights() -> None:
    torch.manual_seed(0)
    model = build_model("all-minilm-l6-v2", device="cpu", dtype=torch.float32, num_layers=1)
    tokens = torch.randint(0, 30522, (1, 8))
    with torch.no_grad():
        hidden = model(tokens).last_hidden_state
    assert hidden.shape == (1, 8, 384) and torch.isfinite(hidden).all()
    assert model.encoder.layer[0].attention.self.query.weight.std() > 0


def test_families_without_a_formula() -> None:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    dense = CONFIG_MAPPING["phi3"](
        hidden_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=96,
        num_hidden_layers=2,
        vocab_size=100,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    facts = model_facts(dense)
    assert (facts.n_kv_heads, facts.head_dim, facts.is_decoder) == (2, 16, True)
    assert facts.kv_bytes_per_token(2) == 2 * 2 * 2 * 16 * 2
    moe = CONFIG_MAPPING["qwen2_moe"](hidden_size=64, num_attention_heads=4, num_hidden_layers=1, num_experts=4)
    with pytest.raises(ModelError, match="mixture-of-experts family 'qwen2_moe'"):
        model_facts(moe)
