"""trnsim.kernels exports every library kernel as an nki Kernel, even after its module was imported."""

from __future__ import annotations

import importlib

import trnsim.kernels
from trnsim.nki import Kernel


def test_every_export_is_a_kernel() -> None:
    for module in ("matmul", "transpose", "rope", "embedding", "attention", "conv", "reductions", "elementwise"):
        importlib.import_module(f"trnsim.kernels.{module}")
    for name in trnsim.kernels.__all__:
        assert isinstance(getattr(trnsim.kernels, name), Kernel), name
