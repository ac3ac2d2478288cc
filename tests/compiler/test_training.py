"""Training through torch.compile(backend="trnsim"): AOTAutograd's forward and backward graphs run on the
simulated chip; loss, gradients and an optimizer step must equal eager PyTorch from the same weights."""

import copy
import random

import pytest
import torch
import transformers

import trnsim
from trnsim.compiler.kernel_cache import default_cache
from trnsim.compiler.lowering.context import LowerContext
from trnsim.compiler.lowering.table import LOWERINGS
from trnsim.hw.presets import get_spec
from trnsim.runtime.last_profile import recording


def _seed() -> None:
    torch.manual_seed(random.randrange(2**31))


def _mlp() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(48, 96), torch.nn.ReLU(), torch.nn.Linear(96, 64), torch.nn.GELU(), torch.nn.Linear(64, 10)
    )


def _llama() -> torch.nn.Module:
    cfg = transformers.LlamaConfig(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=300,
        use_cache=False,
    )
    return transformers.LlamaForCausalLM(cfg).train()


def _mlp_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return torch.nn.functional.cross_entropy(model(x), y)


def _lm_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    ids, _ = batch
    return model(ids, labels=ids).loss


def _batch(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    if kind == "mlp":
        return torch.randn(16, 48), torch.randint(0, 10, (16,))
    ids = torch.randint(0, 300, (2, 16))
    return ids, ids


CASES = {"mlp": (_mlp, _mlp_loss), "llama": (_llama, _lm_loss)}
ATTENTION_AND_LOSS = (
    "aten._scaled_dot_product_flash_attention_for_cpu.default",
    "aten._scaled_dot_product_flash_attention_for_cpu_backward.default",
    "aten._log_softmax.default",
    "aten._log_softmax_backward_data.default",
)


@pytest.mark.parametrize("kind", list(CASES))
def test_training_step_matches_eager(kind):
    _seed()
    build, loss_fn = CASES[kind]
    eager = build()
    on_chip = copy.deepcopy(eager)
    compiled = torch.compile(on_chip, backend="trnsim")
    batch = _batch(kind)
    with recording() as profiles:
        loss = loss_fn(compiled, batch)
        loss.backward()
    ref = loss_fn(eager, batch)
    ref.backward()

    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
    for (name, p), (_, q) in zip(on_chip.named_parameters(), eager.named_parameters(), strict=True):
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")

    # both graphs ran on the simulated chip, and the backward graph's matmuls are device kernels
    labels = [p.label for p in profiles]
    assert labels == ["forward", "backward"]
    fwd, bwd = profiles
    assert fwd.device_time_us > 0 and bwd.device_time_us > 0
    assert bwd.flops > fwd.flops  # dW and dX matmuls: about twice the forward's
    assert any(r.kind == "kernel" and r.op in ("aten.mm.default", "aten.addmm.default") for r in bwd.records)
    host = {r.op for p in profiles for r in p.host_fallback}
    if kind == "mlp":
        assert not host  # ReLU backward and the bias gradients' row sums have lowerings
    else:  # attention forward/backward and the loss's log-softmax run on the chip
        on_chip = {r.op for p in profiles for r in p.records if r.kind == "kernel"}
        for op in ATTENTION_AND_LOSS:
            assert op in on_chip and op not in host, op


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_optimizer_step_after_compiled_backward_matches_eager(optimizer):
    _seed()
    eager = _mlp()
    on_chip = copy.deepcopy(eager)
    compiled = torch.compile(on_chip, backend="trnsim")

    def make(params):
        if optimizer == "sgd":
            return torch.optim.SGD(params, lr=0.1, momentum=0.9)
        # eps well above the gradients' fp32 rounding differences: Adam's first step is about lr * sign(g),
        # which two correct fp32 gradients of a near-zero entry can disagree on
        return torch.optim.AdamW(params, lr=1e-2, weight_decay=0.01, eps=1e-3)

    opt_chip, opt_eager = make(on_chip.parameters()), make(eager.parameters())
    for _ in range(2):  # the second step also checks the compiled model reads the updated weights
        batch = _batch("mlp")
        for model, opt in ((compiled, opt_chip), (eager, opt_eager)):
            opt.zero_grad()
            _mlp_loss(model, batch).backward()
            opt.step()
    for (name, p), (_, q) in zip(on_chip.named_parameters(), eager.named_parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")


def test_estimate_training_flops_are_three_forwards_and_mfu_is_a_fraction():
    rng = random.Random()
    widths = [128 * rng.randint(1, 4) for _ in range(4)]
    tokens = 64 * rng.randint(1, 4)
    with torch.device("meta"):
        layers: list[torch.nn.Module] = []
        for i in range(3):
            layers += [torch.nn.Linear(widths[i], widths[i + 1]), torch.nn.ReLU()]
        model = torch.nn.Sequential(*layers[:-1])
    x = torch.empty(tokens, widths[0], device="meta")

    forward = trnsim.estimate(model, (x,))
    step = trnsim.estimate(model, (x,), training=True)

    weights = [widths[i] * widths[i + 1] for i in range(3)]
    biases = sum(widths[1:])
    # closed form: forward 2*W*T; backward 2*W*T for dW plus 2*W*T for dX, except the first layer's dX
    # (the input needs no gradient), plus 2*T per bias element (its gradient is a ones-row matmul on TensorE)
    assert forward.flops == pytest.approx(2 * sum(weights) * tokens, rel=1e-3)
    expected = 6 * sum(weights) * tokens - 2 * weights[0] * tokens + 2 * biases * tokens
    assert step.flops == pytest.approx(expected, rel=1e-3)
    assert 2.0 < step.flops / forward.flops <= 3.0
    assert step.device_time_us > forward.device_time_us
    assert 0.0 < step.mfu <= 1.0
    assert any(r.op == "adamw_update" for r in step.records)

    # HBM plan: fp32 weights plus AdamW's two fp32 moments resident; activations at least one layer's output
    n_params = sum(p.numel() for p in model.parameters())
    assert step.weight_bytes == 4 * n_params + 8 * n_params
    assert forward.weight_bytes == 4 * n_params
    assert step.activation_peak_bytes >= tokens * max(widths) * 4
    assert step.peak_hbm_bytes == step.weight_bytes + step.activation_arena_bytes and step.fits_hbm


def test_estimate_training_warns_when_the_step_does_not_fit_the_rank_hbm():
    from trnsim.errors import TrnsimWarning
    from trnsim.hw.presets import get_spec

    spec = get_spec("trn2")
    tiny = spec.model_copy(update={"chip": spec.chip.model_copy(update={"hbm_bytes": 4 * 2**20})})  # 1 MiB/rank
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256))
    with pytest.warns(TrnsimWarning, match="GiB of HBM per rank"):
        step = trnsim.estimate(model, (torch.empty(128, 256, device="meta"),), training=True, target=tiny)
    assert step.hbm_capacity_bytes == 2**20 and step.peak_hbm_bytes > 2**20 and not step.fits_hbm


def _ctx(op: str) -> LowerContext:
    return LowerContext(get_spec("trn2"), functional=True, cache=default_cache(), node="n", op=op)


@pytest.mark.parametrize("mask", ["none", "causal", "bool", "additive"])
def test_attention_lowerings_match_torch(mask):
    _seed()
    b, h, s, d = 2, 3, random.randint(5, 40), 16
    q, k, v = (torch.randn(b, h, s, d) for _ in range(3))
    kwargs: dict = {}
    ref_kwargs: dict = {}
    if mask == "bool":  # the lowering takes boolean masks; torch's CPU op wants them additive
        keep = torch.rand(b, 1, s, s) > 0.3
        keep[..., 0] = True  # every query sees at least one key
        kwargs["attn_mask"] = keep
        ref_kwargs["attn_mask"] = torch.zeros(keep.shape).masked_fill(~keep, float("-inf"))
    elif mask == "additive":
        kwargs["attn_mask"] = ref_kwargs["attn_mask"] = torch.randn(b, 1, s, s)
    causal = mask == "causal"
    aten = torch.ops.aten
    ref_out, ref_lse = aten._scaled_dot_product_flash_attention_for_cpu.default(q, k, v, 0.0, causal, **ref_kwargs)
    out, lse = LOWERINGS["aten._scaled_dot_product_flash_attention_for_cpu.default"](
        _ctx("attn"), q, k, v, 0.0, causal, **kwargs
    )
    torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(lse, ref_lse, rtol=1e-4, atol=1e-5)
    grad = torch.randn_like(ref_out)
    ref = aten._scaled_dot_product_flash_attention_for_cpu_backward.default(
        grad, q, k, v, ref_out, ref_lse, 0.0, causal, **ref_kwargs
    )
    got = LOWERINGS["aten._scaled_dot_product_flash_attention_for_cpu_backward.default"](
        _ctx("attn_bw"), grad, q, k, v, ref_out, ref_lse, 0.0, causal, **kwargs
    )
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)


def test_backward_elementwise_and_reduction_lowerings_match_torch():
    _seed()
    aten = torch.ops.aten
    rows, cols = random.randint(3, 200), random.randint(2, 300)
    x, g = torch.randn(rows, cols), torch.randn(rows, cols)
    checks = [
        ("aten.threshold_backward.default", (g, x, 0.0)),
        ("aten._log_softmax.default", (x, -1, False)),
        ("aten._log_softmax_backward_data.default", (g, torch.log_softmax(x, -1), -1, torch.float32)),
        ("aten.sum.dim_IntList", (x, [0])),  # a bias gradient: over the leading dimension
        ("aten.sum.dim_IntList", (torch.randn(4, rows, cols), [0, 1], True)),
        ("aten.sum.dim_IntList", (torch.randn(3, rows, 5), [0, 2])),  # not all leading: a transposed read
        ("aten.sum.dim_IntList", (x, [-1])),  # the trailing case keeps its original lowering
    ]
    for op, args in checks:
        _, name, overload = op.split(".")
        ref = getattr(getattr(aten, name), overload)(*args)
        ctx = _ctx(op)
        got = LOWERINGS[op](ctx, *args)
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4, msg=lambda m, op=op: f"{op}: {m}")
        assert ctx.records and all(r.kind != "host" for r in ctx.records)


def test_estimate_training_of_a_model_with_a_kv_cache_config():
    cfg = transformers.GPT2Config(n_layer=1, n_embd=64, n_head=4, vocab_size=300, n_positions=64)
    assert cfg.use_cache  # Hugging Face's default: the training estimate must not build a KV cache
    with torch.device("meta"):
        model = transformers.GPT2LMHeadModel(cfg)
    tokens = 32
    step = trnsim.estimate(model, (torch.zeros(2, tokens // 2, dtype=torch.long, device="meta"),), training=True)
    assert model.config.use_cache  # restored
    # the matmul parameters (the block's 12*h^2 and the tied 300 x h head) at 6 flops per parameter and token
    h = 64
    closed_form = 6 * (12 * h * h + 300 * h) * tokens
    assert 0.8 < step.flops / closed_form < 1.5
    assert 0.0 < step.mfu <= 1.0
