"""Left-padded prompts: the pad positions' queries attend to no key. torch's SDPA returns 0 for such a row (eager
has no NaN); the compiled explicit-mask attention must match instead of taking a softmax over all -inf (NaN)."""

import warnings

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")


def _compiled(fn, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # host-fallback notices for the mask ops are expected here
        return torch.compile(fn, backend="trnsim", options=options or None)


@pytest.mark.parametrize("kind", ["bool", "additive"])
def test_sdpa_row_with_no_allowed_key_is_zero_like_eager(kind):
    g = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(2, 3, 5, 16, generator=g) for _ in range(3))
    allowed = torch.rand(2, 1, 5, 5, generator=g) > 0.3
    allowed[..., 0] = True
    allowed[0, 0, :2] = False  # batch 0's first two queries see no key
    allowed[1, 0, 4] = False
    mask = allowed if kind == "bool" else torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))

    def attend(q, k, v, mask):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    expected = attend(q, k, v, mask)
    got = _compiled(attend)(q, k, v, mask)
    assert not got.isnan().any()
    assert torch.equal(got[0, :, :2], torch.zeros_like(got[0, :, :2]))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("side", "tp"), [("left", 1), ("right", 1), ("left", 2)])
def test_gpt2_padded_batch_matches_eager(side, tp):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=1, n_embd=64, n_head=4, vocab_size=128, n_positions=32)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    ids = torch.randint(0, 128, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.long)
    if side == "left":
        mask[0, :3] = 0
    else:
        mask[0, 5:] = 0
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        compiled = _compiled(model, tp=tp) if tp > 1 else _compiled(model)
        got = compiled(input_ids=ids, attention_mask=mask, use_cache=False).logits
    assert not expected.isnan().any()  # eager is defined on the pad positions too, so compare every position
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
