"""Stand-in for AWS's NkiCpuSimulator package: nki-library's simulation mode runs kernels on trnsim.

nki-library's test/utils/simulation_setup.py imports `nki_cpu_simulator.nki.{builtin,compiler,isa,
isa.constants,language,language.dtypes,tensor,typing}` and calls `nki.cpu_simulate(kernel)[lnc](**inputs)`.
Each name here is the trnsim module of the same role.
"""

import os
import sys
import types
import warnings
from typing import Any

import trnsim.nki as _trn_nki
from trnsim.errors import warning_category
from trnsim.nki import Kernel, jit, simulate
from trnsim.runtime.instance_launch import run_ranks

_trn_nki.install_aliases()


# nki-library sets NKI_NC_VERSION from --platform-target before each simulation (gen2 trn1, gen3 trn2, gen4 trn3)
_TARGETS = {"gen2": "trn1", "gen3": "trn2", "gen4": "trn3"}


def _target() -> Any:
    return _TARGETS.get(os.environ.get("NKI_NC_VERSION", ""))


class _CpuSimulate:
    def __init__(self, kernel: Any) -> None:
        self._kernel = kernel if isinstance(kernel, Kernel) else jit(kernel)  # the simulator takes plain functions

    def __getitem__(self, lnc: int) -> Any:
        if lnc <= 1:
            return simulate(self._kernel[lnc], target=_target())

        def run_together(*args: Any, **kwargs: Any) -> Any:
            # an LNC=2 kernel's two programs exchange data (sendrecv, core_barrier): they run together, as one
            # rank of trnsim's instance launcher, instead of one after the other
            prof = run_ranks(self._kernel[lnc], [args], target=_target(), lnc=lnc, kwargs=kwargs)
            # as trnsim.nki.simulate does for one core: the run's warnings (reads of never-written memory, outputs
            # left unwritten) become Python warnings, so `-W error` stops at them instead of at a NaN result
            for rank in prof.ranks:
                for message in rank.warnings:
                    warnings.warn(message, warning_category(message), stacklevel=2)
            return prof.outputs[0]

        return run_together

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return simulate(self._kernel, target=_target())(*args, **kwargs)


class _NkiModule(types.ModuleType):
    """trnsim.nki plus the simulator's `cpu_simulate` entry point."""

    def __getattr__(self, name: str) -> Any:
        return getattr(sys.modules["nki"] if sys.modules.get("nki") is not self else _trn_nki, name)


class _LanguageModule(types.ModuleType):
    """nki.language with the simulator's `language.dtypes` submodule (trnsim's nki.dtype)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(sys.modules["trnsim.nki.language"], name)


language = _LanguageModule("nki_cpu_simulator.nki.language")
language.dtypes = sys.modules["nki.dtype"]  # type: ignore[attr-defined]
language.__path__ = []  # type: ignore[attr-defined]

nki = _NkiModule("nki_cpu_simulator.nki")
nki.cpu_simulate = _CpuSimulate  # type: ignore[attr-defined]
nki.__path__ = []  # type: ignore[attr-defined]
for _key, _alias in {
    "nki.builtin": types.ModuleType("nki_cpu_simulator.nki.builtin"),
    "nki.compiler": sys.modules["nki.compiler"],
    "nki.isa": sys.modules["nki.isa"],
    "nki.isa.constants": sys.modules["nki.isa.constants"],
    "nki.language": language,
    "nki.language.dtypes": sys.modules["nki.dtype"],
    "nki.tensor": sys.modules["nki.tensor"],
    "nki.typing": sys.modules["nki.typing"],
}.items():
    sys.modules["nki_cpu_simulator." + _key] = _alias
    if _key.count(".") == 1:  # `import a.b.c as x` walks attributes: nki.language must be the stand-in
        setattr(nki, _key.split(".")[1], _alias)
sys.modules["nki_cpu_simulator.nki"] = nki
