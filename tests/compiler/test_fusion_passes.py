"""Fusion passes (elementwise chains, RoPE, tanh GELU, matmul epilogues): each fires on the pattern it is for
(node counts before / after on the captured graph), leaves values equal to eager on fresh random inputs, and
does not fuse an intermediate that another op still reads."""

import math
from collections import Counter

import pytest
import torch

import trnsim
from trnsim.compiler.capture import capture
from trnsim.compiler.passes import run_passes

# bf16: one rounding per op in eager vs on chip, over a few ops
TOL = {torch.float32: {"rtol": 1e-4, "atol": 1e-4}, torch.bfloat16: {"rtol": 3e-2, "atol": 3e-2}}


def _ops(model, *inputs, passes=True):
    gm = capture(model, inputs).gm
    if passes:
        run_passes(gm)
    return Counter(
        getattr(n.target, "__name__", None)
        if callable(n.target) and not hasattr(n.target, "_schema")
        else str(n.target)
        for n in gm.graph.nodes
        if n.op == "call_function"
    )


def _check_against_eager(model, make_input, dtype):
    model = model.to(dtype).eval()
    exe = trnsim.compile(model, (make_input(dtype),))
    x = make_input(dtype)  # fresh values, same shapes
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(exe(x), expected, **TOL[dtype])
    return exe.profile


# -- modules -----------------------------------------------------------------------------------------------
class Chain(torch.nn.Module):
    """Unary, scalar, broadcast-tensor, reversed and cast steps in one single-user chain."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.rand(d) + 0.5)

    def forward(self, x):
        y = torch.tanh(x * 0.5 + 0.25) * self.scale
        y = 1.0 - torch.sigmoid(y) / 2.0
        return (y.float() * 3.0).exp()


class TwoUsers(torch.nn.Module):
    """y = x * 2 feeds two ops: it must be written out, so it cannot disappear into a chain."""

    def forward(self, x):
        y = x * 2.0
        return torch.exp(y + 1.0) * 0.5 + torch.tanh(y)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Rotary(torch.nn.Module):
    """Hugging Face Llama's apply_rotary_pos_emb on q and k (tables [B, 1, S, D] from position ids)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d)), persistent=False)

    def forward(self, q):
        s = q.shape[2]
        pos = torch.arange(s, dtype=torch.float32)[None, :, None]
        freqs = pos * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(q.dtype).unsqueeze(1), emb.sin().to(q.dtype).unsqueeze(1)
        k = q * 0.5
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class Mlp(torch.nn.Module):
    """Llama MLP plus a residual: silu(gate) * up, down + residual, and a bias + relu linear."""

    def __init__(self, d: int, f: int) -> None:
        super().__init__()
        self.gate = torch.nn.Linear(d, f, bias=False)
        self.up = torch.nn.Linear(d, f, bias=False)
        self.down = torch.nn.Linear(f, d, bias=False)
        self.proj = torch.nn.Linear(d, d)

    def forward(self, x):
        h = x + self.down(torch.nn.functional.silu(self.gate(x)) * self.up(x))
        return torch.relu(self.proj(h))


class GptMlp(torch.nn.Module):
    """GPT-2's MLP as transformers writes it: Conv1D (addmm on a flattened view), NewGELU by hand, dropout."""

    def __init__(self, d: int, f: int) -> None:
        super().__init__()
        self.w_fc = torch.nn.Parameter(torch.randn(d, f) / math.sqrt(d))
        self.b_fc = torch.nn.Parameter(torch.randn(f) * 0.1)
        self.w_proj = torch.nn.Parameter(torch.randn(f, d) / math.sqrt(f))
        self.b_proj = torch.nn.Parameter(torch.randn(d) * 0.1)
        self.drop = torch.nn.Dropout(0.1)

    def forward(self, x):
        h = torch.addmm(self.b_fc, x.view(-1, x.shape[-1]), self.w_fc).view(*x.shape[:-1], -1)
        h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * torch.pow(h, 3.0))))
        out = torch.addmm(self.b_proj, h.view(-1, h.shape[-1]), self.w_proj).view(*x.shape)
        return x + self.drop(out)


class SharedLinear(torch.nn.Module):
    """The linear's result is read twice: its epilogue (relu) must stay a separate op."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(d, d)

    def forward(self, x):
        y = self.lin(x)
        return torch.relu(y) + y


# -- tests -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_elementwise_chain_fuses_into_one_node_and_matches_eager(dtype):
    model = Chain(48).to(dtype)
    x = torch.randn(3, 20, 48, dtype=dtype)
    before, after = _ops(model, x, passes=False), _ops(model, x)
    elementwise = sum(v for k, v in before.items() if k.split(".")[1] in ("mul", "add", "tanh", "sigmoid", "div"))
    assert elementwise >= 6
    assert after["elementwise_chain"] == 1
    assert not any(k.startswith(("aten.mul", "aten.add", "aten.tanh", "aten.sigmoid", "aten.exp")) for k in after)
    prof = _check_against_eager(Chain(48), lambda dt: torch.randn(3, 20, 48, dtype=dt), dtype)
    assert [r.kernel for r in prof.records if r.kind == "kernel"] == ["fused_chain"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_intermediate_with_two_users_is_not_fused_away(dtype):
    x = torch.randn(4, 64, dtype=dtype)
    after = _ops(TwoUsers(), x)
    assert after["aten.mul.Tensor"] == 1  # y = x * 2 is still computed (and stored) once
    # exp(y + 1) * 0.5 + tanh(y) is one chain from y; tanh(y), its second operand, is a separate op
    assert after["elementwise_chain"] == 1 and after["aten.tanh.default"] == 1
    _check_against_eager(TwoUsers(), lambda dt: torch.randn(4, 64, dtype=dt), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rotary_pattern_lowers_to_rope_kernel(dtype):
    model = Rotary(32)
    q = torch.randn(2, 4, 24, 32, dtype=dtype)
    before, after = _ops(model, q, passes=False), _ops(model, q)
    assert before["aten.neg.default"] == 2 and before["aten.cat.default"] >= 2
    assert after["rope_embedding"] == 2
    assert not {"aten.neg.default", "aten.cat.default", "aten.slice.Tensor"} & set(after)  # (cat(freqs) is folded)
    prof = _check_against_eager(Rotary(32), lambda dt: torch.randn(2, 4, 24, 32, dtype=dt), dtype)
    assert [r.kernel for r in prof.records].count("rope") == 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_linear_epilogue_folds_activation_bias_and_residual(dtype):
    torch.manual_seed(1)
    model = Mlp(64, 96).to(dtype)
    x = torch.randn(2, 10, 64, dtype=dtype)
    before, after = _ops(model, x, passes=False), _ops(model, x)
    assert before["aten.linear.default"] == 4 and before["aten.silu.default"] == 1
    assert after["linear_epilogue"] == 3  # gate + silu, down + residual, proj + relu
    assert after["aten.linear.default"] == 1  # up: its product with silu(gate) is no epilogue of the kernel
    assert not {"aten.silu.default", "aten.relu.default", "aten.add.Tensor"} & set(after)
    prof = _check_against_eager(model, lambda dt: torch.randn(2, 10, 64, dtype=dt), dtype)
    launched = [r.kernel for r in prof.records if r.kind == "kernel"]
    # the three fused linears; up may run as linear or matmul, whichever the cost model finds faster
    assert launched.count("linear") >= 3 and launched.count("linear") + launched.count("matmul") == 4


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpt2_mlp_gelu_and_residual_fold_into_addmm(dtype):
    torch.manual_seed(2)
    model = GptMlp(32, 64).eval()
    x = torch.randn(2, 12, 32)
    before, after = _ops(model, x, passes=False), _ops(model, x)
    assert before["aten.addmm.default"] == 2 and before["aten.tanh.default"] == 1
    assert after["linear_epilogue"] == 2 and "aten.addmm.default" not in after
    assert not any(k.startswith(("aten.tanh", "aten.pow", "aten.mul", "aten.add")) for k in after)
    prof = _check_against_eager(model, lambda dt: torch.randn(2, 12, 32, dtype=dt), dtype)
    assert {r.kernel for r in prof.records if r.kind == "kernel"} == {"linear"}


def test_linear_result_with_two_users_keeps_its_epilogue_separate():
    x = torch.randn(2, 8, 32)
    after = _ops(SharedLinear(32).eval(), x)
    assert after["aten.linear.default"] == 1 and "linear_epilogue" not in after
    assert after["aten.relu.default"] + after["elementwise_chain"] >= 1
    _check_against_eager(SharedLinear(32), lambda dt: torch.randn(2, 8, 32, dtype=dt), torch.float32)


def test_fused_graph_runs_in_timing_mode_with_the_same_device_time():
    torch.manual_seed(3)
    model = Mlp(64, 96).eval()
    x = torch.randn(1, 16, 64)
    functional, timing = trnsim.compile(model, (x,)), trnsim.compile(model, (x,), mode="timing")
    functional(x)
    assert timing(x).device.type == "meta"
    assert timing.profile.device_time_us == pytest.approx(functional.profile.device_time_us)


def test_plain_linear_takes_the_faster_of_linear_and_matmul_kernels():
    """A bias-free linear on a wide weight may run as matmul (tokens stationary, the weight laid out K-major at
    compile time): its device time is never above the linear kernel's own, and values stay eager's."""
    from trnsim.compiler.kernel_runner import run_kernel
    from trnsim.hw.presets import get_spec
    from trnsim.kernels import linear
    from trnsim.nki import TensorSpec

    torch.manual_seed(4)
    model = torch.nn.Linear(64, 2048, bias=False).eval()
    prof = _check_against_eager(model, lambda dt: torch.randn(1, 128, 64, dtype=dt), torch.float32)
    (record,) = [r for r in prof.records if r.kind == "kernel"]
    spec_args = (TensorSpec((1, 128, 64), "float32"), TensorSpec((2048, 64), "float32"))
    _, alone = run_kernel(linear, spec_args, {}, get_spec("trn2"), functional=False)
    assert record.kernel in ("linear", "matmul")
    assert record.device_us <= alone.latency_us + 1e-9


class ResidualThenReshape(torch.nn.Module):
    """A decoder block's output projection: flattened tokens, residual add, then back to [batch, seq, hidden]."""

    def __init__(self, hidden):
        super().__init__()
        self.o_proj = torch.nn.Linear(hidden, hidden)

    def forward(self, attn, residual):
        b, s, h = residual.shape
        out = self.o_proj(attn.reshape(b * s, h)) + residual.reshape(b * s, h)
        return torch.relu(out.view(b, s, h))


class ReshapeThenResidual(torch.nn.Module):
    """The same block with the residual added after the linear's output is viewed back to 3-D."""

    def __init__(self, hidden):
        super().__init__()
        self.o_proj = torch.nn.Linear(hidden, hidden)

    def forward(self, attn, residual):
        b, s, h = residual.shape
        return self.o_proj(attn.reshape(b * s, h)).view(b, s, h) + residual


@pytest.mark.parametrize("model_cls", [ResidualThenReshape, ReshapeThenResidual])
def test_epilogue_with_a_reshape_around_the_residual_matches_eager(model_cls):
    torch.manual_seed(4)
    model = model_cls(32).eval()
    inputs = (torch.randn(2, 6, 32), torch.randn(2, 6, 32))
    after = _ops(model, *inputs)
    assert after["linear_epilogue"] == 1 and "aten.linear.default" not in after
    exe = trnsim.compile(model, inputs)
    fresh = (torch.randn(2, 6, 32), torch.randn(2, 6, 32))
    with torch.no_grad():
        expected = model(*fresh)
    torch.testing.assert_close(exe(*fresh), expected, **TOL[torch.float32])
    assert not [r for r in exe.profile.records if r.kind != "kernel" and "linear" in r.kernel]
