"""trnsim.compile (AOT), options, strict mode and host fallback."""

import warnings

import pytest
import torch
import torch.nn.functional as F

import trnsim
from trnsim.errors import CompileError, TrnsimWarning, UnsupportedOpError


class Block(torch.nn.Module):
    def __init__(self, d: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm = torch.nn.LayerNorm(d)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.out = torch.nn.Linear(d, d)

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.qkv(self.norm(x)).split(d, dim=-1)
        q, k, v = (t.view(b, s, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return x + self.out(a.transpose(1, 2).reshape(b, s, d))


class WithCumprod(torch.nn.Module):  # an op with no lowering
    def forward(self, x):
        return torch.cumprod(x, dim=-1) * 2.0


class WithCumsum(torch.nn.Module):
    def forward(self, x):
        return torch.cumsum(x, dim=-1) * 2.0


def test_aot_compile_matches_eager_and_reports_profile():
    model = Block().eval()
    x = torch.randn(2, 16, 32)
    exe = trnsim.compile(model, (x,), target="trn1")
    x2 = torch.randn(2, 16, 32)  # a fresh input, same shapes
    with torch.no_grad():
        torch.testing.assert_close(exe(x2), model(x2), rtol=1e-4, atol=1e-4)
    prof = exe.profile
    assert prof is trnsim.last_profile()
    assert prof.target == "trn1"
    kernels = prof.by_kernel()
    assert {"flash_attention", "linear", "layernorm"} <= set(kernels)
    assert prof.device_time_us == pytest.approx(sum(r.device_us * r.count for r in prof.records))
    d = prof.to_dict()
    assert d["device_time_us"] > 0 and d["by_op"] and d["host_fallback"] == []


def test_timing_mode_gives_same_device_time_without_values():
    model = Block().eval()
    x = torch.randn(1, 32, 32)
    functional = trnsim.compile(model, (x,))
    timing = trnsim.compile(model, (x,), mode="timing")
    functional(x)
    out = timing(x)
    assert out.device.type == "meta" and out.shape == x.shape
    assert timing.profile.device_time_us == pytest.approx(functional.profile.device_time_us)


def test_host_fallback_warns_and_keeps_time_out_of_device_time():
    model = WithCumprod()
    x = torch.randn(4, 8)
    with pytest.warns(TrnsimWarning, match="aten.cumprod.default runs on the host CPU"):
        out = torch.compile(model, backend="trnsim")(x)
    torch.testing.assert_close(out, torch.cumprod(x, -1) * 2.0)
    prof = trnsim.last_profile()
    assert [r.op for r in prof.host_fallback] == ["aten.cumprod.default"]
    assert prof.host_time_us > 0
    assert prof.device_time_us == pytest.approx(sum(r.device_us for r in prof.records if r.kind != "host"))


def test_strict_mode_names_the_op_and_the_model_line():
    model = WithCumprod()
    with pytest.raises(UnsupportedOpError, match=r"aten.cumprod.default.*test_compile_api.py:\d+"):
        trnsim.compile(model, (torch.randn(4, 8),), strict=True)


def test_bad_options_are_a_clear_error():
    # torch.compile wraps backend errors in its own BackendCompilerFailed, keeping our message
    with pytest.raises(Exception, match=r"targt: Extra inputs are not permitted \(allowed options: target"):
        torch.compile(Block(), backend="trnsim", options={"targt": "trn2"})(torch.randn(1, 4, 32))
    with pytest.raises(CompileError, match="tp"):
        trnsim.compile(Block(), (torch.randn(1, 4, 32),), tp=0)
    # tensor parallelism splits Hugging Face decoders (tests/compiler/test_tp_compile.py); a plain module has no
    # head layout to split
    with pytest.raises(CompileError, match=r"tp=2 is not supported for Block: tensor parallelism splits"):
        trnsim.compile(Block(), (torch.randn(1, 4, 32),), tp=2)
    with pytest.raises(Exception, match=r"tp=4 is not supported for Block"):
        torch.compile(Block(), backend="trnsim", options={"tp": 4})(torch.randn(1, 4, 32))


def test_data_dependent_op_in_a_shapes_only_run_is_explained():
    class Nonzero(torch.nn.Module):
        def forward(self, x):
            return torch.nonzero(x > 0)

    with pytest.raises(CompileError):
        trnsim.estimate(Nonzero(), (torch.randn(4, 4),))


def test_registered_lowering_is_used():
    from trnsim import kernels
    from trnsim.compiler.lowering.table import LOWERINGS

    calls = []

    def cumsum_last(ctx, x, dim, dtype=None):
        calls.append(dim)
        # a user lowering may launch any kernel; here: a reference-checked composition for dim=-1 on a tiny row
        return torch.stack([ctx.kernel(kernels.reduce_last, x[..., : i + 1], "add") for i in range(x.shape[-1])], -1)

    old = LOWERINGS.pop("aten.cumsum.default", None)
    try:
        trnsim.register_lowering(torch.ops.aten.cumsum.default, cumsum_last)
        x = torch.randn(3, 5)
        with warnings.catch_warnings():
            warnings.simplefilter("error", TrnsimWarning)
            exe = trnsim.compile(WithCumsum(), (x,))
            out = exe(x)
        torch.testing.assert_close(out, torch.cumsum(x, -1) * 2.0, rtol=1e-5, atol=1e-5)
        assert calls and exe.profile.host_fallback == []
    finally:
        LOWERINGS.pop("aten.cumsum.default", None)
        if old is not None:
            LOWERINGS["aten.cumsum.default"] = old
