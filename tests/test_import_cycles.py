"""Each trnsim package, and each runtime module (imported by trnsim.nki's __init__, the cycle seen before), imports
on its own: a fresh trnsim import state per module, so a circular import shows up whichever module comes first."""

import pathlib
import subprocess
import sys

import trnsim

_SRC = pathlib.Path(trnsim.__file__).parent

# Drops every trnsim module before importing the next one (third-party modules such as torch stay loaded, which keeps
# this fast; a cycle between trnsim modules does not depend on them).
_IMPORT_EACH_FRESH = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "trnsim" or m.startswith("trnsim.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {exc!r}")
print("\\n".join(failed))
"""


def _modules_to_check() -> list[str]:
    packages = sorted(f"trnsim.{p.name}" for p in _SRC.iterdir() if (p / "__init__.py").exists())
    runtime = sorted(f"trnsim.runtime.{p.stem}" for p in (_SRC / "runtime").glob("*.py") if p.stem != "__init__")
    return packages + runtime


def test_each_package_and_runtime_module_imports_alone():
    modules = _modules_to_check()
    assert "trnsim.runtime.instance_launch" in modules and "trnsim.nki" in modules
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH_FRESH, *modules], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "", f"modules that fail to import on their own:\n{done.stdout}"


def test_instance_launch_alone_in_a_fresh_interpreter():
    """The exact case that was broken: a new interpreter whose first trnsim import is instance_launch."""
    done = subprocess.run(
        [sys.executable, "-c", "import trnsim.runtime.instance_launch as m; print(m.run_ranks.__name__)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "run_ranks"
