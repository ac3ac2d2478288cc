"""Helpers for the GPU-model tests: an "ideal" GPU whose model reduces to closed-form rooflines."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import pytest

from trnsim.gpu import GpuModel, GpuSpec
from trnsim.gpu.presets import PRESET_DIR


def preset_data(name: str) -> dict[str, Any]:
    return tomllib.loads((PRESET_DIR / f"{name}.toml").read_text())


def ideal_curves(sm_count_tiles: tuple[int, int] = (1, 1), max_split_k: int = 1, launch_s: float = 0.0) -> dict:
    """Every efficiency 1, no overheads, one tile shape, a near-hard max: the roofline itself."""
    cls = {
        "tiles": [list(sm_count_tiles)],
        "tile_efficiency": [1.0],
        "k_overhead": 0.0,
        "stream_efficiency": 1.0,
        "gemv_stream_efficiency": 1.0,
    }
    return {
        "fit": {"date": "2026-11-26", "method": "none (test)", "device": "ideal", "data": []},
        "memory": {"bandwidth_efficiency": 1.0, "launch_s": launch_s, "floor_s": 0.0},
        "gemm": {
            "overhead_s": 0.0,
            "combine_exponent": 2000.0,
            "max_split_k": max_split_k,
            "tensor": copy.deepcopy(cls),
            "simt": copy.deepcopy(cls),
        },
    }


def ideal_gpu(
    sm_count: int = 1, tile: tuple[int, int] = (1, 1), max_split_k: int = 1, launch_s: float = 0.0
) -> GpuModel:
    data = preset_data("h100")
    data.pop("efficiency_fit")
    data["efficiency"] = ideal_curves(tile, max_split_k, launch_s)
    data["compute"]["sm_count"] = sm_count
    data["kernels"]["attention_efficiency"] = 1.0
    return GpuModel(GpuSpec.model_validate(data))


@pytest.fixture
def h100() -> GpuModel:
    return GpuModel.from_preset("h100")


@pytest.fixture
def h100_data() -> dict[str, Any]:
    """The h100 preset as a fresh dict, to edit into a user's own GPU file."""
    return preset_data("h100")


@pytest.fixture
def make_ideal_gpu():
    """ideal_gpu(sm_count=1, tile=(1, 1), max_split_k=1, launch_s=0.0) -> GpuModel."""
    return ideal_gpu
