"""Serving a mixture-of-experts model in fp8/MX: its experts' stacked weights are stored in the format too (not only
the nn.Linear layers), so the served weight bytes follow the closed form from the published config."""

from __future__ import annotations

import pytest

from trnsim.models import model_facts
from trnsim.serve.setup import linear_params, served_model


def test_mixtral_expert_weights_count_as_matmul_weights() -> None:
    facts = model_facts("mixtral-8x7b")
    h, layers, vocab, experts = 4096, 32, 32000, 8
    # matmul weights: attention, experts, LM head; not: the embedding table, the norms and the router (a 2-D
    # parameter of transformers' router module, not an nn.Linear: 8 x 4096 per layer, kept in bf16)
    others = vocab * h + (2 * layers + 1) * h + layers * experts * h
    assert linear_params("mixtral-8x7b") == facts.n_params - others


@pytest.mark.parametrize(("fmt_bytes", "name"), [(1 + 1 / 32, "mxfp8"), (1.0, "fp8")])
def test_served_weight_bytes_in_a_format(fmt_bytes: float, name: str) -> None:
    facts = model_facts("mixtral-8x7b")
    matmul = linear_params("mixtral-8x7b")
    served = served_model("mixtral-8x7b", 4, 2, fmt_bytes)
    want = (facts.n_params - matmul) * 2 + matmul * fmt_bytes
    assert served.weight_bytes == pytest.approx(want, rel=1e-9), name
