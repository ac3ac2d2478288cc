"""`@nki.jit(platform_target=...)` (NKI 0.2 and earlier): the kernel runs on that target unless the launch
names one, with a one-time older-release warning; an unknown target is the spec's own error."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.language as nl
from trnsim.errors import TrnsimError
from trnsim.nki import versions


def scaled_copy(x):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nl.store(out, nl.multiply(nl.load(x), 3.0))
    return out


@pytest.fixture(autouse=True)
def fresh_warnings() -> None:
    versions._warned.discard(("nki.jit", "platform_target"))


def test_platform_target_picks_the_chip_and_warns_once(rng: np.random.Generator) -> None:
    x = rng.standard_normal((int(rng.integers(1, 129)), int(rng.integers(1, 300)))).astype(np.float32)
    with pytest.warns(versions.NkiVersionWarning, match="platform_target"):
        kernel = nki.jit(platform_target="trn1")(scaled_copy)
    with warnings.catch_warnings():
        warnings.simplefilter("error", versions.NkiVersionWarning)
        again = nki.jit(scaled_copy, platform_target="trn3")  # warned once already
        prof = nki.profile(kernel)(x)
        np.testing.assert_allclose(prof.outputs, x * 3.0, rtol=1e-6)
        assert prof.target == "trn1"
        assert nki.profile(kernel[2])(x).target == "trn1"  # a launch grid keeps it
        assert nki.profile(again)(x).target == "trn3"
        assert nki.profile(kernel, target="trn2")(x).target == "trn2"  # the launch's target wins


def test_an_unknown_platform_target_is_a_clear_error() -> None:
    with pytest.raises(TrnsimError, match="trn9"):
        nki.jit(platform_target="trn9")(scaled_copy)
