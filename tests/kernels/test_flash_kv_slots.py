"""Flash attention's K/V places reused across KV groups (kernels/_flash_tiles.KVSlots): values stay exact, a
place still held by an in-flight group is never overwritten, and long sequences no longer fragment SBUF."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import trnsim.kernels
import trnsim.kernels._flash_tiles as flash_tiles
import trnsim.nki as nki


def sdpa(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
    return F.scaled_dot_product_attention(tq, tk, tv, is_causal=True, enable_gqa=True).numpy()


def count_takes(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    seen = {"first": 0, "reused": 0, "fresh": 0}
    take = flash_tiles.KVSlots.take

    def counted(self: Any, kv: Any, v_shape: Any, kt_shape: Any) -> Any:
        i = self.turn % self.COUNT
        kind = "first" if i == len(self.places) else "fresh" if self.owners[i]() is not None else "reused"
        seen[kind] += 1
        return take(self, kv, v_shape, kt_shape)

    monkeypatch.setattr(flash_tiles.KVSlots, "take", counted)
    return seen


# (B, H, Hkv, S, D): many KV groups; S = 1 query tile gives groups of few units (the previous groups may still
# be in flight when a place comes round again), S = 640 groups of many units
@pytest.mark.parametrize("case", [(2, 8, 4, 640, 64), (3, 4, 4, 128, 64), (2, 6, 3, 300, 128)])
def test_reused_places_keep_values(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, case: Any) -> None:
    b, h, hkv, s, d = case
    seen = count_takes(monkeypatch)
    q = rng.standard_normal((b, h, s, d)).astype(np.float32)
    k, v = (rng.standard_normal((b, hkv, s, d)).astype(np.float32) for _ in range(2))
    out = nki.simulate(trnsim.kernels.flash_attention)(q, k, v, causal=True)
    np.testing.assert_allclose(out, sdpa(q, k, v), rtol=2e-5, atol=2e-5)
    groups = b * hkv
    assert sum(seen.values()) == groups and seen["first"] == min(3, groups)
    if s >= 640:  # the reuse path ran (a group whose old occupant is still referenced gets fresh tiles)
        assert seen["reused"] > 0, seen


def test_places_bound_the_kv_allocations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Timing mode, 8 KV groups of a 2048-key sequence: K^T and V take 3 places each (not 8 fresh tiles)."""
    seen = count_takes(monkeypatch)
    spec = nki.TensorSpec((1, 8, 2048, 128), "bfloat16")
    from trnsim.hw import load_preset
    from trnsim.nki.kernel import trace

    trace(trnsim.kernels.flash_attention, (spec,) * 3, {"causal": True}, target=load_preset("trn2"), mode="timing")
    assert seen == {"first": 3, "reused": 5, "fresh": 0}
