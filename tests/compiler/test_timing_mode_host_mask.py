"""A shapes-only (timing) run of a model whose attention mask is cast on the host: the cast moves its result to
the activations' device, which in timing mode is the meta device. The timing run must launch the same kernels
and moves as a functional run on real inputs, at the same cost; only the embedding gather's cost depends on
the ids' values (consecutive rows merge into longer DMA runs), which a timing run does not have."""

from __future__ import annotations

import warnings

import pytest
import torch
import transformers

import trnsim
from trnsim.errors import TrnsimWarning


def test_timing_mode_runs_a_bert_with_a_padding_mask_and_times_it_like_functional(rng) -> None:
    cfg = transformers.BertConfig(
        hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128, vocab_size=97
    )
    model = transformers.BertModel(cfg).eval()
    seq = int(rng.integers(8, 40))
    ids = torch.from_numpy(rng.integers(0, 97, (2, seq)))
    mask = torch.ones(2, seq, dtype=torch.long)
    mask[1, int(rng.integers(1, seq)) :] = 0
    records = {}
    for mode in ("functional", "timing"):
        torch._dynamo.reset()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TrnsimWarning)
            out = torch.compile(model, backend="trnsim", options={"mode": mode})(input_ids=ids, attention_mask=mask)
        assert out.last_hidden_state.shape == (2, seq, 64)
        records[mode] = trnsim.last_profile().records
    functional, timing = records["functional"], records["timing"]
    assert [(r.node, r.kind, r.kernel) for r in timing] == [(r.node, r.kind, r.kernel) for r in functional]
    for f, t in zip(functional, timing, strict=True):
        if t.kernel != "embedding":
            assert t.device_us == pytest.approx(f.device_us), t.node
    assert sum(r.device_us for r in timing) > 0
