"""The step-grid cache key names the source that prices a table: a change to any file on the pricing path (or to
torch's or transformers' version) gives a new key, a change elsewhere keeps it (serve/step_components.py,
pricing_fingerprint)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import trnsim

ROOT = Path(trnsim.__file__).parent


@pytest.fixture
def fresh() -> Iterator[Callable[[str], str]]:
    """pricing_fingerprint(family), recomputed from the files on each call."""

    def clear() -> None:  # the modules as loaded now (tests/test_import_cycles.py re-imports trnsim)
        importlib.import_module("trnsim.compiler.kernel_cache").source_fingerprint.cache_clear()
        importlib.import_module("trnsim.serve.step_components").pricing_fingerprint.cache_clear()

    def fingerprint(family: str) -> str:
        clear()
        return str(importlib.import_module("trnsim.serve.step_components").pricing_fingerprint(family))

    yield fingerprint
    clear()


def _edited(monkeypatch: pytest.MonkeyPatch, under: str) -> None:
    """Every .py file under ROOT/under reads with one more line, as after an edit."""
    read = Path.read_bytes
    folder = ROOT / under

    def read_bytes(self: Path) -> bytes:
        data = read(self)
        return data + b"\n# edited\n" if self.suffix == ".py" and folder in self.parents else data

    monkeypatch.setattr(Path, "read_bytes", read_bytes)


@pytest.mark.parametrize("package", ["models", "compiler/lowering", "kernels", "runtime"])
def test_a_change_on_the_pricing_path_changes_both_keys(monkeypatch, fresh, package) -> None:
    before = {family: fresh(family) for family in ("trainium", "gpu")}
    _edited(monkeypatch, package)
    assert all(fresh(family) != before[family] for family in before)


def test_gpu_code_prices_gpu_tables_only(monkeypatch, fresh) -> None:
    before = {family: fresh(family) for family in ("trainium", "gpu")}
    _edited(monkeypatch, "gpu")
    assert fresh("trainium") == before["trainium"]
    assert fresh("gpu") != before["gpu"]


def test_the_serving_side_is_not_on_the_path(monkeypatch, fresh) -> None:
    before = fresh("trainium")
    _edited(monkeypatch, "cli")
    assert fresh("trainium") == before
    # the module as imported now: another test may have re-imported transformers after this file imported it
    current = importlib.import_module("transformers")
    monkeypatch.setattr(current, "__version__", current.__version__ + ".post1")
    assert fresh("trainium") != before
