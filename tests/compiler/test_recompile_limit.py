"""Dynamo's recompile limit: past it Dynamo runs the function eagerly on the host; trnsim must say so (one
warning per function) and mark the profiles that miss that work, instead of silently reporting a partial run."""

import warnings

import pytest
import torch

import trnsim
from trnsim.compiler.backend_guard import eager_fallbacks
from trnsim.errors import TrnsimWarning


def scale_rows(x, w):
    return torch.relu(x @ w) * 2.0


def _call(fn, rows, w):
    x = torch.randn(rows, 16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = fn(x, w)
    torch.testing.assert_close(got, scale_rows(x, w))  # eager or compiled, the values must be right
    return [w for w in caught if issubclass(w.category, TrnsimWarning) and "recompile_limit" in str(w.message)]


def test_recompile_limit_hit_warns_once_and_marks_the_profile():
    w = torch.randn(16, 8)
    compiled = torch.compile(scale_rows, backend="trnsim", dynamic=False)
    with torch._dynamo.config.patch(recompile_limit=2):
        assert _call(compiled, 4, w) == [] and _call(compiled, 5, w) == []  # two shapes: two compilations
        compiled_profile = trnsim.last_profile()
        assert compiled_profile is not None and compiled_profile.eager_fallback == []
        hits = _call(compiled, 6, w)  # a third shape: Dynamo gives up and runs scale_rows eagerly
        assert len(hits) == 1
        message = str(hits[0].message)
        assert "'scale_rows'" in message and "recompile_limit (2)" in message
        assert "torch._dynamo.config.recompile_limit = " in message  # how to raise it
        # the latest profile is still the 5-row call's; it now says later calls of scale_rows ran eagerly
        assert trnsim.last_profile() is compiled_profile
        assert len(compiled_profile.eager_fallback) == 1 and "'scale_rows'" in compiled_profile.eager_fallback[0]
        assert [f.limit for f in eager_fallbacks()] == [2]
        assert compiled_profile.to_dict()["eager_fallback"] == compiled_profile.eager_fallback
        assert "partly eager" in str(compiled_profile.summary())
        assert _call(compiled, 7, w) == []  # once per function, not once per call


def test_profiles_after_reset_no_longer_carry_the_fallback():
    w = torch.randn(16, 8)
    compiled = torch.compile(scale_rows, backend="trnsim", dynamic=False)
    with torch._dynamo.config.patch(recompile_limit=1):
        _call(compiled, 4, w)
        assert len(_call(compiled, 5, w)) == 1
    assert eager_fallbacks()
    torch._dynamo.reset()  # Dynamo compiles scale_rows afresh: nothing runs eagerly any more
    assert eager_fallbacks() == []
    _call(torch.compile(scale_rows, backend="trnsim", dynamic=False), 4, w)
    assert trnsim.last_profile().eager_fallback == []


@pytest.mark.parametrize("limit", [3])
def test_within_the_limit_nothing_is_flagged(limit):
    w = torch.randn(16, 8)
    compiled = torch.compile(scale_rows, backend="trnsim", dynamic=False)
    with torch._dynamo.config.patch(recompile_limit=limit):
        for rows in range(2, 2 + limit):
            assert _call(compiled, rows, w) == []
    assert eager_fallbacks() == [] and trnsim.last_profile().eager_fallback == []
