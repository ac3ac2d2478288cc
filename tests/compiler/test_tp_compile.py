"""Compiled models with tp > 1: a Hugging Face decoder split over simulated ranks that exchange partial sums
through NKI collectives, against eager PyTorch (the unsplit model), and priced like trnsim.estimate."""

from __future__ import annotations

import pytest
import torch
import transformers

import trnsim
from trnsim.errors import CompileError


def _llama(heads: int = 4, kv_heads: int = 2, hidden: int = 64, inter: int = 96, vocab: int = 300):
    torch.manual_seed(int(torch.randint(0, 2**31, ()).item()))
    cfg = transformers.LlamaConfig(
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        vocab_size=vocab,
        use_cache=False,
    )
    return transformers.LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("tp", [2, 4])
def test_tiny_llama_matches_eager_fp32(tp):
    model = _llama()
    ids = torch.randint(0, 300, (1, 16))
    exe = trnsim.compile(model, (ids,), tp=tp)
    with torch.no_grad():
        ref = model(ids).logits
        out = exe(ids).logits
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    prof = trnsim.last_profile()
    assert prof is not None and prof.tp == tp and not prof.host_fallback
    assert len(prof.rank_device_us) == tp and min(prof.rank_device_us) > 0
    kernels = prof.by_kernel()
    # one all-reduce after each layer's attention output and MLP down projection, one all-gather of the logits
    assert kernels["all_reduce"]["count"] == 4 and kernels["all_gather"]["count"] == 1
    assert prof.collective_us > 0 and prof.to_dict()["rank_device_us"] == prof.rank_device_us


def test_ranks_on_two_chips_exchange_over_the_links():
    # trn2 has 4 logical cores per chip: 8 ranks span two chips of a trn2.48xlarge
    model = _llama(heads=8, kv_heads=2)
    ids = torch.randint(0, 300, (1, 8))
    exe = trnsim.compile(model, (ids,), tp=8, instance="trn2.48xlarge")
    with torch.no_grad():
        torch.testing.assert_close(exe(ids).logits, model(ids).logits, rtol=1e-4, atol=1e-4)
    two_chips = trnsim.last_profile()
    one_chip = trnsim.estimate(model, (ids,), tp=4)
    assert two_chips is not None and two_chips.tp == 8
    assert two_chips.collective_us == pytest.approx(trnsim.estimate(model, (ids,), tp=8).collective_us, rel=1e-12)
    assert two_chips.collective_us > 10 * one_chip.collective_us  # link hops, not the chip's own HBM


def test_padded_heads_and_vocabulary_match_eager():
    # 6 heads over 4 ranks run as 8 (two zero heads), a vocabulary of 301 as 4 x 76, intermediate 80 as 4 x 20
    model = _llama(heads=6, kv_heads=6, hidden=48, inter=80, vocab=301)
    ids = torch.randint(0, 301, (2, 8))
    exe = trnsim.compile(model, (ids,), tp=4)
    with torch.no_grad():
        torch.testing.assert_close(exe(ids).logits, model(ids).logits, rtol=1e-4, atol=1e-4)


def test_bf16_matches_eager_within_bf16_tolerance():
    model = _llama().to(torch.bfloat16)
    ids = torch.randint(0, 300, (1, 16))
    exe = trnsim.compile(model, (ids,), tp=2)
    with torch.no_grad():
        out = exe(ids).logits.float()
        ref = model.float()(ids).logits
    assert torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0) > 0.999
    torch.testing.assert_close(out, ref, rtol=0.1, atol=0.1)


def _gpt2():
    cfg = transformers.GPT2Config(n_layer=1, n_embd=64, n_head=4, vocab_size=300, n_positions=64, use_cache=False)
    return transformers.GPT2LMHeadModel(cfg).eval()


@pytest.mark.parametrize("make", [_llama, _gpt2], ids=["llama", "gpt2"])
def test_torch_compile_backend_runs_tp_ranks(make):
    # Dynamo compiles a different frame for each (Llama: wrapper(*args, **kwargs) with the model first, GPT-2:
    # wrapper(self, *args, **kwargs)); the call's tensors, keyword ones included, reach every rank
    model = make()
    ids = torch.randint(0, 300, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 6:] = 0  # the second sequence is two tokens shorter
    compiled = torch.compile(model, backend="trnsim", options={"tp": 2})
    with torch.no_grad():
        out = compiled(ids, attention_mask=mask).logits
        ref = model(ids, attention_mask=mask).logits
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    prof = trnsim.last_profile()
    assert prof is not None and prof.tp == 2 and len(prof.rank_device_us) == 2


def test_profile_prices_collectives_and_kernels_like_estimate():
    model = _llama()
    ids = torch.randint(0, 300, (1, 16))
    exe = trnsim.compile(model, (ids,), tp=2)
    with torch.no_grad():
        exe(ids)
    compiled = trnsim.last_profile()
    assert compiled is not None
    estimated = trnsim.estimate(model, (ids,), tp=2)
    assert compiled.collective_us == pytest.approx(estimated.collective_us, rel=1e-12)
    got, want = compiled.by_kernel(), estimated.by_kernel()
    # the kernels tensor parallelism sizes run at the same shapes on both sides; the estimate (meta tensors, no
    # buffers to fold) also computes the rotary tables on the device, so its total is a little higher
    for kernel in ("linear", "matmul", "flash_attention", "rmsnorm", "rope", "all_reduce", "all_gather"):
        assert got[kernel]["count"] == want[kernel]["count"], kernel
        assert got[kernel]["device_us"] == pytest.approx(want[kernel]["device_us"], rel=1e-9), kernel
    assert compiled.device_time_us <= estimated.device_time_us < 1.15 * compiled.device_time_us
    # shapes only: the same ranks' timelines, the logits as a meta tensor of the whole vocabulary
    logits = trnsim.compile(model, (ids,), tp=2, mode="timing")(ids).logits
    assert logits.device.type == "meta" and tuple(logits.shape) == (1, 16, 300)
    timing = trnsim.last_profile()
    assert timing is not None and timing.mode == "timing"
    # the same kernels at the same cost, but the embedding gather: its DMA runs follow the ids' values (adjacent
    # consecutive ids share one DMA), which a shapes-only run does not have
    assert [(r.node, r.kernel) for r in timing.records] == [(r.node, r.kernel) for r in compiled.records]
    for t, f in zip(timing.records, compiled.records, strict=True):
        if t.kernel != "embedding":
            assert t.device_us == pytest.approx(f.device_us, rel=1e-9), t.node
    assert timing.device_time_us == pytest.approx(compiled.device_time_us, rel=1e-3)


def test_bad_tensor_parallel_options_are_clear_errors():
    ids = torch.randint(0, 300, (1, 8))
    # 6 heads in 2 KV groups of 3 over 4 ranks (two heads each): rank 1 would hold heads of both groups
    with pytest.raises(CompileError, match=r"tp=4: rank 1's KV head 0 would serve query heads of KV heads \[0, 1\]"):
        trnsim.compile(_llama(heads=6, kv_heads=2, hidden=48), (ids,), tp=4)
    with pytest.raises(CompileError, match=r"tp=4096 on trn2: .*the largest trn2 instance has"):
        trnsim.compile(_llama(), (ids,), tp=4096)
    with pytest.raises(CompileError, match=r"tp=2: a rank holds one slice of the vocabulary.*without labels"):
        trnsim.compile(_llama(), (ids,), {"labels": ids}, tp=2)
    model = _llama()
    model.config.use_cache = True  # the graph then returns each layer's K/V too
    with (
        pytest.raises(Exception, match=r"returns the logits only: call the model with use_cache=False"),
        torch.no_grad(),
    ):
        torch.compile(model, backend="trnsim", options={"tp": 2})(ids)
