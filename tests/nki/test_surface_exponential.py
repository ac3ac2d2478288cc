"""NC-v4 nisa.exponential against numpy: exp(src - max_value) with a scalar or [P, 1] max, the Vector engine's
running sum (reset_reduce, reduce across calls, load_reduce), and its rules as clear errors in both modes."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import ShapeMismatchError, UsageError


@nki.jit
def softmax_parts(x, per_partition_max, out_dtype):
    t = nl.load(x)
    m = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_reduce(dst=m, op=nl.maximum, data=t, axis=1)
    e = nl.ndarray(x.shape, dtype=out_dtype, buffer=nl.sbuf)
    s = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
    half = x.shape[1] // 2
    mx = m if per_partition_max else 0.5
    # two calls share the engine's running sum: reset on the first half, add the second half
    nisa.exponential(e[:, 0:half], t[:, 0:half], max_value=mx, reduce_cmd=nisa.reduce_cmd.reset_reduce)
    nisa.exponential(
        e[:, half : x.shape[1]], t[:, half : x.shape[1]], max_value=mx, reduce_res=s, reduce_cmd=nisa.reduce_cmd.reduce
    )
    out_e = nl.ndarray(x.shape, dtype=out_dtype, buffer=nl.shared_hbm)
    out_s = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out_e, e)
    nl.store(out_s, s)
    return out_e, out_s


@pytest.mark.parametrize("per_partition_max", [True, False])
@pytest.mark.parametrize("out_dtype", [nl.float32, nl.bfloat16])
def test_exponential_and_its_running_sum_match_numpy(
    rng: np.random.Generator, per_partition_max: bool, out_dtype: object
) -> None:
    p, f = int(rng.integers(1, 129)), 2 * int(rng.integers(1, 200))
    x = rng.standard_normal((p, f)).astype(np.float32) * 3
    e, s = nki.simulate(softmax_parts, target="trn3")(x, per_partition_max, out_dtype)
    m = x.max(axis=1, keepdims=True) if per_partition_max else np.float32(0.5)
    want = np.exp(x.astype(np.float64) - m)
    rtol = 1e-5 if out_dtype == nl.float32 else 1e-2
    np.testing.assert_allclose(np.asarray(e, dtype=np.float64), want, rtol=rtol)
    np.testing.assert_allclose(s[:, 0], want.sum(axis=1), rtol=1e-5)  # summed in fp32 before the cast


@nki.jit
def loaded_sum(x, init):
    t = nl.load(x)
    e = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf)
    s = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.exponential(e, t, reduce_res=s, reduce_cmd=nisa.reduce_cmd.load_reduce, reduce_init=init)
    out = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, s)
    return out


def test_load_reduce_starts_from_reduce_init(rng: np.random.Generator) -> None:
    x = rng.standard_normal((16, 40)).astype(np.float32)
    init = float(rng.uniform(1, 10))
    got = nki.simulate(loaded_sum, target="trn3")(x, init)
    np.testing.assert_allclose(got[:, 0], init + np.exp(x.astype(np.float64)).sum(axis=1), rtol=1e-5)


@nki.jit
def bad(which):
    t = nl.ndarray((32, 64), dtype=nl.float32, buffer=nl.sbuf)
    nisa.memset(dst=t, value=0.0)
    e = nl.ndarray((32, 64), dtype=nl.float32, buffer=nl.sbuf)
    if which == "shape":
        nisa.exponential(nl.ndarray((32, 32), dtype=nl.float32, buffer=nl.sbuf), t)
    elif which == "max-shape":
        nisa.exponential(e, t, max_value=nl.ndarray((32, 2), dtype=nl.float32, buffer=nl.sbuf))
    elif which == "reduce-shape":
        red = nl.ndarray((32, 2), dtype=nl.float32, buffer=nl.sbuf)
        nisa.exponential(e, t, reduce_res=red, reduce_cmd=nisa.reduce_cmd.reset_reduce)
    elif which == "idle-with-res":
        nisa.exponential(e, t, reduce_res=nl.ndarray((32, 1), dtype=nl.float32, buffer=nl.sbuf))
    elif which == "init-without-load":
        nisa.exponential(e, t, reduce_cmd=nisa.reduce_cmd.reset_reduce, reduce_init=2.0)
    elif which == "plain":
        nisa.exponential(e, t)
    out = nl.ndarray((1, 1), dtype=nl.float32, buffer=nl.shared_hbm)
    return out


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("shape", ShapeMismatchError, "same partitions"),
        ("max-shape", ShapeMismatchError, "max_value must be a scalar or a [32, 1] tile"),
        ("reduce-shape", ShapeMismatchError, "reduce_res must be [32, 1]"),
        ("idle-with-res", UsageError, "idle sums nothing"),
        ("init-without-load", UsageError, "load_reduce"),
    ],
)
@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_exponential_rules_are_clear_errors_in_both_modes(
    which: str, error: type[Exception], words: str, mode: str
) -> None:
    with pytest.raises(error) as info:
        nki.profile(bad, target="trn3", mode=mode)(which)  # type: ignore[arg-type]
    assert words in str(info.value) and "test_surface_exponential.py" in str(info.value)


@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_exponential_needs_neuroncore_v4(target: str) -> None:
    with pytest.raises(UsageError, match="NeuronCore-v4") as info:
        nki.profile(bad, target=target, mode="timing")("plain")  # type: ignore[arg-type]
    assert info.value.rule == "exp-target"
