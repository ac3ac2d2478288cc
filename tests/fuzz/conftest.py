"""Fixtures of the fuzz suites; generated kernels are written to real files so errors can name their lines."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # kernel_programs, random_modules, fuzz_settings (bench/ too)


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where generated kernels are written (a traceback and error location then name a real file and line)."""
    return tmp_path_factory.mktemp("fuzz_kernels")
