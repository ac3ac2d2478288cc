"""MIG profiles of H100 / H200: what fits on one GPU (against an independent brute-force search over the
documented placements), and a slice's SMs, bandwidth and memory (against the GPU model's closed forms)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from trnsim.errors import TrnsimError
from trnsim.gpu.mig import mig_profile, mig_profiles, place_slices, slice_spec
from trnsim.gpu.model import GpuModel
from trnsim.gpu.presets import load_gpu_preset

H100 = {
    "1g.10gb": (1, 1),
    "1g.20gb": (1, 2),
    "2g.20gb": (2, 2),
    "3g.40gb": (3, 4),
    "4g.40gb": (4, 4),
    "7g.80gb": (7, 8),
}


def test_the_published_profiles() -> None:
    # NVIDIA's table: 7 compute slices (fraction of SMs), 8 memory slices (fraction of memory); H200 the same cuts
    assert {n: (p.compute, p.memory) for n, p in mig_profiles("h100").items()} == H100
    h200 = {n: (p.compute, p.memory) for n, p in mig_profiles("h200").items()}
    assert sorted(h200.values()) == sorted(H100.values()) and "3g.71gb" in h200 and "7g.141gb" in h200
    for gpu in ("h100", "h200"):
        hbm = load_gpu_preset(gpu).memory.hbm_gib
        for name, p in mig_profiles(gpu).items():  # the name's memory is its share of the GPU's, rounded
            assert abs(float(name.split(".")[1].removesuffix("gb")) - hbm * p.memory_fraction) <= 1.0
    assert [p.instances for p in mig_profiles("h100").values()] == [7, 4, 3, 2, 1, 1]


def _fits_by_brute_force(names: list[str]) -> bool:
    """Try every combination of start slices; compute slices add up to at most 7, memory slices never overlap."""
    profiles = [mig_profile("h100", n) for n in names]
    if len(profiles) > 7 or sum(p.compute for p in profiles) > 7:
        return False
    for starts in itertools.product(*(p.placements for p in profiles)):
        cells = [c for p, s in zip(profiles, starts, strict=True) for c in range(s, s + p.memory)]
        if len(cells) == len(set(cells)) and max(cells) < 8:
            return True
    return False


def test_placement_against_brute_force_on_random_mixes() -> None:
    rng = np.random.default_rng()
    names = list(H100)
    for _ in range(300):
        mix = [str(n) for n in rng.choice(names, size=int(rng.integers(1, 9)))]
        expected = _fits_by_brute_force(mix)
        if expected:
            starts = place_slices("h100", mix)
            cells = [c for n, s in zip(mix, starts, strict=True) for c in range(s, s + mig_profile("h100", n).memory)]
            assert len(cells) == len(set(cells))
        else:
            with pytest.raises(TrnsimError, match="do not fit one h100"):
                place_slices("h100", mix)
    # the documented examples: 4g + 3g fill a GPU; seven 1g; but never two 4g, or 1g.10gb x 8
    assert place_slices("h100", ["4g.40gb", "3g.40gb"]) == [0, 4]
    assert place_slices("h100", ["1g.10gb"] * 7) == list(range(7))
    for bad in (["4g.40gb", "4g.40gb"], ["1g.10gb"] * 8, ["7g.80gb", "1g.10gb"]):
        with pytest.raises(TrnsimError):
            place_slices("h100", bad)


def test_a_slice_is_its_share_of_the_gpu() -> None:
    full = load_gpu_preset("h100")
    p = mig_profile("h100", "3g.40gb")
    part = slice_spec(full, p)
    assert part.compute.sm_count == int(132 * 3 / 7)
    assert part.compute.dense_bf16_tflops == pytest.approx(full.compute.dense_bf16_tflops * 3 / 7)
    assert part.memory.hbm_tb_per_s == pytest.approx(full.memory.hbm_tb_per_s / 2)
    assert part.memory.hbm_gib == pytest.approx(40.0) and part.instance.gpus == 1
    # a large streaming kernel: time = launch + bytes / (bandwidth x efficiency), so half the bandwidth takes
    # twice the streaming part
    whole, sliced = GpuModel(full), GpuModel(part)
    nbytes = float(np.random.default_rng().uniform(1e9, 4e9))
    launch = whole.curves.memory.launch_s
    assert (sliced.memory_time_s(nbytes) - launch) == pytest.approx(2 * (whole.memory_time_s(nbytes) - launch))
    # a large compute-bound GEMM runs at about 3/7 of the full GPU's rate (wave quantisation aside)
    m = n = k = 8192
    ratio = sliced.gemm_time_s(m, n, k) / whole.gemm_time_s(m, n, k)
    assert 7 / 3 * 0.9 < ratio < 7 / 3 * 1.15


def test_unknown_profiles_and_gpus_are_clear_errors() -> None:
    with pytest.raises(TrnsimError, match=r"h100 has no MIG profile '3g\.71gb'; its profiles: 1g\.10gb"):
        mig_profile("h100", "3g.71gb")
    with pytest.raises(TrnsimError, match="no MIG profiles for GPU 'b200'"):
        mig_profiles("b200")
