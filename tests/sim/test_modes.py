"""Functional and timing-only runs give the same timeline; the profile and its Perfetto export agree."""

from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import trnsim.nki as nki
from trnsim.demo import softmax_rows, tensor_add, tiled_matmul
from trnsim.sim.timeline import N_ENGINES


def _spec(a: np.ndarray) -> nki.TensorSpec:
    return nki.TensorSpec(a.shape, a.dtype)


@pytest.mark.parametrize("target", ["trn1", "trn2", "trn3"])
def test_functional_and_timing_timelines_are_identical(rng: np.random.Generator, target: str) -> None:
    cases = [
        (
            tiled_matmul,
            (
                rng.standard_normal((256, 256)).astype(ml_dtypes.bfloat16),
                rng.standard_normal((256, 1024)).astype(ml_dtypes.bfloat16),
            ),
        ),
        (softmax_rows, (rng.standard_normal((256, 1024)).astype(np.float32),)),
        (tensor_add[4], (rng.standard_normal((512, 256)).astype(np.float32),) * 2),
    ]
    for kernel, args in cases:
        f = nki.profile(kernel, target=target)(*args)
        t = nki.profile(kernel, target=target, mode="timing")(*(_spec(a) for a in args))
        assert f.latency_us == t.latency_us
        for name in ("slice_instr", "slice_core", "slice_unit", "slice_start", "slice_end"):
            np.testing.assert_array_equal(getattr(f.timeline, name), getattr(t.timeline, name))
        assert [i.label for i in f.instructions] == [i.label for i in t.instructions]
        assert isinstance(t.outputs, nki.TensorSpec) and t.outputs.shape == np.shape(f.outputs)


def test_profile_numbers_follow_from_the_instructions(rng: np.random.Generator) -> None:
    a_t = rng.standard_normal((256, 128)).astype(ml_dtypes.bfloat16)
    b = rng.standard_normal((256, 512)).astype(ml_dtypes.bfloat16)
    prof = nki.profile(tiled_matmul, target="trn2")(a_t, b)
    np.testing.assert_allclose(prof.outputs, a_t.astype(np.float32).T @ b.astype(np.float32), rtol=1e-4, atol=1e-3)
    assert prof.flops == 2 * 256 * 128 * 512
    assert prof.hbm_bytes == a_t.nbytes + b.nbytes + 128 * 512 * 4
    d = prof.to_dict()
    assert d["by_opcode"]["nc_matmul"]["count"] == 2
    assert d["by_opcode"]["dma_copy"]["count"] == 5
    assert 0 < d["mfu"] < 1
    busy = prof.engine_busy_us
    assert set(busy) == {"tensor", "vector", "scalar", "gpsimd", "sync", "dma"}
    assert all(0 <= v <= prof.latency_us for v in busy.values())
    assert prof.bottleneck() in busy


def test_perfetto_trace_has_a_track_per_engine_and_queue(tmp_path: Path, rng: np.random.Generator) -> None:
    x = rng.standard_normal((512, 256)).astype(np.float32)
    prof = nki.profile(tensor_add[4], target="trn2")(x, x)
    path = prof.to_perfetto(tmp_path / "trace.json")
    doc = json.loads(path.read_text())
    events = doc["traceEvents"]
    procs = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert procs == {0: "NeuronCore 0", 1: "NeuronCore 1", 2: "HBM (chip)"}
    tracks = {(e["pid"], e["args"]["name"]) for e in events if e["name"] == "thread_name"}
    assert len(tracks) == 2 * (N_ENGINES + 16)
    slices = [e for e in events if e["ph"] == "X"]
    assert len(slices) == len(prof.timeline.slice_start)
    end_us = max(e["ts"] + e["dur"] for e in slices)
    assert end_us <= prof.latency_us + 1e-9
    # every slice names the kernel source line that issued it
    assert all("demo/kernels.py" in e["args"]["source"] for e in slices)
