"""Functional replay (compiler/kernel_replay.py, nki/functional_replay.py): a kernel invocation's later calls replay
the numpy work of its first run. Each replayed output is compared bit for bit with a full functional trace of the
same kernel on the same fresh random inputs, and with an independent numpy reference; kernels whose Python or
instruction stream depends on values are refused, and still give the right values on new data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from trnsim import dtypes, kernels
from trnsim.compiler import kernel_replay
from trnsim.compiler.kernel_cache import KernelCache
from trnsim.compiler.kernel_runner import run_kernel
from trnsim.hw.presets import get_spec
from trnsim.nki import functional_replay
from trnsim.nki import isa as nisa
from trnsim.nki import language as nl
from trnsim.nki.kernel import jit, trace
from trnsim.nki.operands import write

SPEC = get_spec("trn2")


@pytest.fixture(autouse=True)
def _fresh_store(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv(kernel_replay.ENV, raising=False)
    monkeypatch.delenv(kernel_replay.ENV_MB, raising=False)
    kernel_replay.store().clear()
    yield
    kernel_replay.store().clear()


def _run(kernel: Any, args: tuple[Any, ...], kwargs: dict[str, Any], cache: KernelCache) -> Any:
    return run_kernel(kernel, args, kwargs, SPEC, True, cache)[0]


def _full(kernel: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The same invocation traced in full, functionally (no cache, no replay)."""
    return trace(kernel, args, kwargs, target=SPEC, mode="functional", cores=1).outputs()


def _same_bits(a: Any, b: Any) -> bool:
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_same_bits(x, y) for x, y in zip(a, b))
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool) -> np.ndarray:
    s = q.astype(np.float64) @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        s = s + np.triu(np.full(s.shape[-2:], -np.inf), 1)
    return _softmax(s) @ v


def _f32(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _conv_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    out = np.zeros((n, o, h - kh + 1, wd - kw + 1))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,oc->nohw", x[:, :, i : i + out.shape[2], j : j + out.shape[3]], w[:, :, i, j])
    return out + b[None, :, None, None]


# name -> (kernel, fresh arguments, numpy reference, tolerance)
Case = tuple[Any, Callable[[np.random.Generator], tuple[tuple[Any, ...], dict[str, Any]]], Callable[..., Any], float]
CASES: dict[str, Case] = {
    "matmul": (
        kernels.matmul,
        lambda r: ((_f32(r, 96, 160), _f32(r, 160, 200)), {}),
        lambda a, b: a @ b,
        1e-4,
    ),
    "linear_bias_gelu_residual": (
        kernels.linear,
        lambda r: (
            (_f32(r, 130, 96), _f32(r, 72, 96), _f32(r, 72)),
            {"activation": "gelu", "residual": _f32(r, 130, 72)},
        ),
        lambda x, w, b, activation, residual: _gelu_tanh(x @ w.T + b) + residual,
        1e-3,
    ),
    "linear_bf16": (
        kernels.linear,
        lambda r: ((_f32(r, 64, 128).astype(dtypes.bfloat16), _f32(r, 256, 128).astype(dtypes.bfloat16)), {}),
        lambda x, w: x.astype(np.float32) @ w.astype(np.float32).T,
        3e-2,
    ),
    "layernorm": (
        kernels.layernorm,
        lambda r: ((_f32(r, 140, 192), _f32(r, 192), _f32(r, 192)), {}),
        lambda x, g, b: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * g + b,
        1e-4,
    ),
    "rmsnorm": (
        kernels.rmsnorm,
        lambda r: ((_f32(r, 100, 256), _f32(r, 256)), {}),
        lambda x, g: x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6) * g,
        1e-4,
    ),
    "softmax": (kernels.softmax, lambda r: ((_f32(r, 130, 300) * 3,), {}), _softmax, 1e-5),
    "flash_attention_causal": (
        kernels.flash_attention,
        lambda r: ((_f32(r, 1, 2, 160, 64), _f32(r, 1, 2, 160, 64), _f32(r, 1, 2, 160, 64)), {"causal": True}),
        lambda q, k, v, causal: _attention(q, k, v, causal),
        1e-4,
    ),
    "binary": (
        kernels.binary,
        lambda r: ((_f32(r, 130, 70), _f32(r, 130, 70), "multiply"), {}),
        lambda x, y, op: x * y,
        1e-6,
    ),
    "fused_chain": (
        kernels.fused_chain,
        lambda r: ((_f32(r, 128, 96), [("multiply", 2.0), ("add", _f32(r, 128, 96)), ("tanh", None)]), {}),
        lambda x, ops: np.tanh(x * 2.0 + ops[1][1]),
        1e-5,
    ),
    "conv2d": (
        kernels.conv2d,
        lambda r: ((_f32(r, 1, 8, 10, 10), _f32(r, 16, 8, 3, 3), _f32(r, 16)), {}),
        _conv_ref,
        1e-4,
    ),
}


@jit
def _activation_with_reduce(x):
    """exp(x) and its row sums through activation's reduce_res, which the builder writes after the instruction."""
    t = nl.load(x)
    e = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf)
    s = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.activation(dst=e, op=nl.exp, data=t, reduce_op=nl.add, reduce_res=s)
    out = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, s)
    return out


CASES["activation_reduce_res"] = (
    _activation_with_reduce,
    lambda r: ((_f32(r, 32, 40),), {}),
    lambda x: np.exp(x).sum(axis=1, keepdims=True),
    1e-5,
)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_replay_is_bit_identical_to_a_full_run(name: str) -> None:
    kernel, make, reference, tol = CASES[name]
    rng = np.random.default_rng()
    cache = KernelCache(use_disk=False)
    store = kernel_replay.store()
    for _ in range(2):  # traced in full (its cost goes to the cache), then recorded (its values are the outputs)
        args, kwargs = make(rng)
        assert _same_bits(_run(kernel, args, kwargs, cache), _full(kernel, args, kwargs))
    assert len(store.replays) == 1 and store.hits == 0, store.refused
    for _ in range(2):  # new values through the replay, twice (a replay must not depend on the one before)
        args, kwargs = make(rng)
        hits = store.hits
        got = _run(kernel, args, kwargs, cache)
        assert store.hits == hits + 1
        assert _same_bits(got, _full(kernel, args, kwargs))
        want = reference(*args, **kwargs)
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=tol, atol=tol * max(1.0, np.abs(want).max()))


def test_the_switch_turns_replay_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kernel_replay.ENV, "0")
    kernel, make, _, _ = CASES["matmul"]
    cache = KernelCache(use_disk=False)
    rng = np.random.default_rng()
    for _ in range(2):
        args, kwargs = make(rng)
        assert _same_bits(_run(kernel, args, kwargs, cache), _full(kernel, args, kwargs))
    assert not kernel_replay.store().replays and kernel_replay.store().hits == 0


def test_an_embedding_is_not_replayed_and_gathers_the_new_ids() -> None:
    """The embedding kernel reads its ids on the host (its DMA runs follow them): refused, so new ids gather anew."""
    rng = np.random.default_rng()
    table = _f32(rng, 500, 64)
    cache = KernelCache(use_disk=False)
    for _ in range(3):
        ids = rng.integers(0, 500, 140).astype(np.int32)
        got = _run(kernels.embedding, (ids, table), {}, cache)
        assert np.array_equal(got, table[ids])
    store = kernel_replay.store()
    assert not store.replays and store.hits == 0
    assert any("on the host" in why for why in store.refused.values())


@jit
def _register_trips(x, trips):
    """x + 1 as many times as the [1, 1] tile `trips` says: a data-dependent loop."""
    t = nl.load(x)
    c = nl.load(trips)
    reg = nisa.register_alloc()
    nisa.register_load(reg, c)
    for _ in nl.dynamic_range(reg):
        nisa.tensor_scalar(t, t, nl.add, 1.0)
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nl.store(out, t)
    return out


def test_a_data_dependent_loop_is_not_replayed() -> None:
    rng = np.random.default_rng()
    cache = KernelCache(use_disk=False)
    for n in (2, 5, 0):
        x = _f32(rng, 16, 32)
        got = _run(_register_trips, (x, np.array([[n]], np.int32)), {}, cache)
        np.testing.assert_allclose(got, x + n, rtol=1e-6)
    assert not kernel_replay.store().replays
    assert "on the host" in next(iter(kernel_replay.store().refused.values()))


@jit
def _half_written(x):
    """Stores a tile whose second half was never written: a warning on every call."""
    t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    half = x.shape[1] // 2
    nisa.dma_copy(dst=t[:, :half], src=x[:, :half])
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=t)
    return out


def test_a_kernel_that_warns_is_traced_every_time_and_warns_every_time() -> None:
    rng = np.random.default_rng()
    cache = KernelCache(use_disk=False)
    for _ in range(2):
        x = _f32(rng, 8, 16)
        traced = trace(_half_written, (x,), {}, target=SPEC, mode="functional", cores=1)
        assert traced.machine.warnings  # the full run warns; so must every call through the runner
        got = run_kernel(_half_written, (x,), {}, SPEC, True, cache)[0]
        assert np.array_equal(got[:, :8], x[:, :8]) and np.isnan(got[:, 8:]).all()
    assert not kernel_replay.store().replays
    assert "warned" in next(iter(kernel_replay.store().refused.values()))


@jit
def _host_write(x):
    """Doubles x, then writes the tile again from the host (as a builder writing an extra output would)."""
    t = nl.load(x)
    nisa.tensor_scalar(t, t, nl.multiply, 2.0)
    write(t, np.ones(t.shape, np.float32), None)
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nl.store(out, t)
    return out


def test_values_written_outside_an_instruction_refuse_the_replay() -> None:
    rng = np.random.default_rng()
    cache = KernelCache(use_disk=False)
    for _ in range(2):
        x = _f32(rng, 32, 40)
        assert np.array_equal(_run(_host_write, (x,), {}, cache), np.ones_like(x))
    assert not kernel_replay.store().replays
    assert "outside an instruction" in next(iter(kernel_replay.store().refused.values()))


def test_a_closure_whose_variable_changes_after_its_instruction_is_refused() -> None:
    """A loop variable captured by reference would replay with its last value: found by comparing the cells."""
    rec = functional_replay.Recorder()
    fns = [lambda: i for i in range(3)]  # noqa: B023  (the late binding is the point)
    rec.cells.append((fns[0], (0,)))  # its cell held 0 when "issued"; it holds 2 now

    class _Machine:
        warnings: tuple[str, ...] = ()

    class _Traced:
        machine = _Machine

    assert functional_replay.finish(rec, _Traced, [((), {})], (), {}) is None
    assert rec.why is not None and "changed after its instruction" in rec.why


def test_replays_are_evicted_least_recently_used_first(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng()
    cache = KernelCache(use_disk=False)
    store = kernel_replay.store()
    for _ in range(2):
        _run(kernels.matmul, (_f32(rng, 64, 128), _f32(rng, 128, 64)), {}, cache)
    one = store.nbytes
    assert one > 0
    monkeypatch.setenv(kernel_replay.ENV_MB, str(1.5 * one / 2**20))  # room for one such replay, not two
    for _ in range(2):
        _run(kernels.matmul, (_f32(rng, 64, 128), _f32(rng, 128, 96)), {}, cache)
    assert len(store.replays) == 1 and store.evicted == 1 and store.nbytes <= 1.5 * one
    a, b = _f32(rng, 64, 128), _f32(rng, 128, 64)
    hits = store.hits
    got = _run(kernels.matmul, (a, b), {}, cache)  # the first shape was evicted: recorded again
    assert store.hits == hits and np.array_equal(got, _full(kernels.matmul, (a, b), {}))


@pytest.mark.parametrize("kind", ["gpt2"])
def test_a_compiled_model_replays_to_the_same_bits(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small GPT-2 through torch.compile: a later call replays; its logits match eager PyTorch, and are bit for bit
    those of the same call with replay off."""
    import torch
    import transformers

    torch.manual_seed(int(np.random.default_rng().integers(1 << 31)))
    if kind == "gpt2":
        cfg: Any = transformers.GPT2Config(
            n_layer=2, n_embd=64, n_head=4, vocab_size=300, n_positions=64, use_cache=False
        )
        model: Any = transformers.GPT2LMHeadModel(cfg)
    else:
        cfg = transformers.LlamaConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=300,
            max_position_embeddings=64,
            use_cache=False,
        )
        model = transformers.LlamaForCausalLM(cfg)
    model.eval()
    compiled = torch.compile(model, backend="trnsim")
    store = kernel_replay.store()
    with torch.no_grad():
        for call in range(2):  # the first call traces each kernel invocation, then records it; the second replays
            ids = torch.randint(0, 300, (1, 24))
            hits = store.hits
            got = compiled(ids).logits
            assert store.hits > hits or call == 0
            torch.testing.assert_close(got, model(ids).logits, rtol=1e-4, atol=1e-4)
        monkeypatch.setenv(kernel_replay.ENV, "0")
        full = compiled(ids).logits
    assert torch.equal(got, full)


@jit
def _many_short_lived_tiles(x):
    """Sums x 64 times through a fresh [128, 4096] fp32 tile each time (16 KiB per partition): the tiles fit SBUF
    only because each dies before the next is made, which a recording run (it keeps every tile) prevents."""
    acc = nl.zeros(x.shape, dtype=nl.float32, buffer=nl.sbuf)
    for _ in range(64):
        t = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        nisa.tensor_tensor(dst=acc, data1=acc, data2=t, op=nl.add)
    out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, acc)
    return out


def test_a_recording_run_that_runs_out_of_memory_falls_back_to_a_full_trace() -> None:
    rng = np.random.default_rng()
    cache = KernelCache(use_disk=False)
    for _ in range(3):
        x = _f32(rng, 128, 4096)
        got = _run(_many_short_lived_tiles, (x,), {}, cache)
        assert _same_bits(got, _full(_many_short_lived_tiles, (x,), {}))
        np.testing.assert_allclose(got, 64 * x, rtol=1e-5)
    assert not kernel_replay.store().replays
    assert "recording run failed (CapacityError" in next(iter(kernel_replay.store().refused.values()))
