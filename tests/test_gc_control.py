"""trnsim.gc_control: the collector is left as it was found, objects made inside are still collected, a caller's
frozen objects stay frozen, and an estimate's results do not depend on when collections run (default collector,
older objects frozen, collections off)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from trnsim.gc_control import FrontEnd, older_objects_frozen, paused


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


@pytest.fixture
def clean_gc() -> Iterator[None]:
    """The collector on with nothing frozen (as a fresh interpreter has it), restored after the test."""
    was_enabled, frozen = gc.isenabled(), gc.get_freeze_count()
    gc.unfreeze()
    gc.enable()
    yield
    if frozen:
        gc.freeze()
    if not was_enabled:
        gc.disable()


def test_older_objects_frozen_skips_only_the_older_objects(clean_gc):
    old = _Node()
    old_ref = weakref.ref(old)
    with older_objects_frozen():
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
        new = _Node()
        new_ref = weakref.ref(new)
        del old, new
        gc.collect()
        assert new_ref() is None  # made inside: collected as usual
        assert old_ref() is not None  # frozen on entry: skipped
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    gc.collect()
    assert old_ref() is None


def test_front_end_pauses_then_freezes_and_restores(clean_gc):
    with FrontEnd() as front:
        assert not gc.isenabled()
        made = _Node()
        made_ref = weakref.ref(made)
        front.settle()
        assert gc.isenabled() and gc.get_freeze_count() > 0
        del made
        gc.collect()
        assert made_ref() is not None  # made by the front end: frozen
        with older_objects_frozen():  # nested (the estimate inside the command): leaves the freeze alone
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() > 0
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.collect()
    assert made_ref() is None


def test_front_end_left_by_an_error_before_settling(clean_gc):
    with pytest.raises(ValueError), FrontEnd():
        raise ValueError("build failed")
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_callers_freeze_and_disable_are_left_alone(clean_gc):
    gc.freeze()
    frozen = gc.get_freeze_count()
    with older_objects_frozen(), FrontEnd() as front:
        assert gc.isenabled()  # the caller froze objects: FrontEnd does nothing either
        front.settle()
    assert gc.get_freeze_count() == frozen
    gc.unfreeze()
    gc.disable()
    with FrontEnd() as front, older_objects_frozen():
        front.settle()
        assert not gc.isenabled() and gc.get_freeze_count() == 0
    assert not gc.isenabled()


def test_nothing_is_frozen_from_a_worker_thread(clean_gc):
    """A freeze on one thread would take in the objects other threads' estimates are making: only the main thread
    freezes."""
    import threading

    seen: list[int] = []

    def work() -> None:
        with older_objects_frozen():
            seen.append(gc.get_freeze_count())
        with FrontEnd() as front:
            front.settle()
            seen.append(gc.get_freeze_count())

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen == [0, 0]
    with older_objects_frozen():
        assert gc.get_freeze_count() > 0


def test_paused_restores_and_leaves_a_disabled_collector_alone(clean_gc):
    with paused():
        assert not gc.isenabled()
        made = _Node()
        made_ref = weakref.ref(made)
        del made
    assert gc.isenabled()
    gc.collect()
    assert made_ref() is None  # paused, not frozen: collected once collections resume
    with pytest.raises(ValueError), paused():
        raise ValueError("build failed")
    assert gc.isenabled()
    gc.disable()
    with paused():
        pass
    assert not gc.isenabled()


def test_build_model_runs_paused_and_restores(clean_gc, monkeypatch):
    """build_model builds with collections paused (transformers' modeling import and the modules stay) and
    leaves the collector on, as it found it."""
    from transformers import LlamaConfig

    from trnsim.models import build
    from trnsim.models.build import build_model

    seen: list[bool] = []
    real = build.resolve_config

    def spy(model: Any) -> Any:
        seen.append(gc.isenabled())
        return real(model)

    monkeypatch.setattr(build, "resolve_config", spy)
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_hidden_layers=2)
    model = build_model(config, device="meta")
    assert seen == [False] and gc.isenabled()
    assert sum(p.numel() for p in model.parameters()) > 0


def _records(profile: Any) -> list[Any]:
    return [
        (r.node, r.op, r.kind, r.kernel, r.count, r.device_us, r.hbm_bytes, r.engine_busy_us) for r in profile.records
    ] + [profile.device_time_us, profile.weight_bytes, profile.activation_peak_bytes, profile.collective_us]


def test_estimate_does_not_depend_on_when_collections_run(clean_gc):
    """A random Llama at tp=2 (sequence long enough for several KV blocks of flash attention), each time with an
    empty kernel cache: per-op records and totals equal with the collector as estimate sets it (older objects
    frozen), as Python leaves it, and off for the whole estimate (tiles in cycles then wait for sim/memory.py's
    own collections)."""
    from transformers import LlamaConfig

    import trnsim.compiler.estimate as est
    from trnsim.compiler.kernel_cache import KernelCache, reset_default_cache
    from trnsim.models import build_model

    rng = np.random.default_rng()
    heads = int(rng.choice((4, 8)))
    kv = int(rng.choice([d for d in (2, 4) if heads % d == 0]))  # tp=2 splits the KV heads too
    head_dim = int(rng.choice((32, 64)))
    config = LlamaConfig(
        hidden_size=heads * head_dim,
        intermediate_size=int(rng.integers(2, 5)) * 128,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        num_hidden_layers=int(rng.integers(2, 4)),
        vocab_size=int(rng.integers(64, 256)) * 4,
        max_position_embeddings=2048,
    )
    seq = int(rng.choice((512, 640, 768)))
    ids = torch.zeros(1, seq, dtype=torch.long, device="meta")
    model = build_model(config, device="meta")

    def run(how: str) -> list[Any]:
        reset_default_cache(KernelCache(use_disk=False))
        try:
            if how == "estimate":
                return _records(est.estimate(model, (ids,), tp=2))
            undecorated = est.estimate.__wrapped__  # type: ignore[attr-defined]
            if how == "off":
                gc.disable()
            try:
                return _records(undecorated(model, (ids,), tp=2))
            finally:
                gc.enable()
        finally:
            reset_default_cache(None)

    managed = run("estimate")
    assert len(managed) > 10 and managed[-4] > 0
    assert run("python") == managed
    assert run("off") == managed
