"""Make `import nki` and `import neuronxcc.nki` resolve to trnsim, so public kernels run unchanged."""

from __future__ import annotations

import sys
import types

import trnsim.nki as _nki
from trnsim.nki import collectives as _collectives
from trnsim.nki import compiler as _compiler
from trnsim.nki import dtype as _dtype
from trnsim.nki import isa as _isa
from trnsim.nki import isa_constants as _isa_constants
from trnsim.nki import language as _language
from trnsim.nki import legacy as _legacy
from trnsim.nki import legacy_isa as _legacy_isa
from trnsim.nki import tensor as _tensor
from trnsim.nki import typing as _typing


def install_aliases() -> None:
    """Register nki(.language/.isa/.isa.constants/.typing/.compiler/.dtype/.tensor) and neuronxcc.nki(...)."""
    neuronxcc = sys.modules.get("neuronxcc")
    if neuronxcc is None or not getattr(neuronxcc, "__trnsim_alias__", False):
        neuronxcc = types.ModuleType("neuronxcc", "trnsim alias of neuronxcc (the Neuron compiler package)")
        neuronxcc.__path__ = []  # a package, so submodule imports work
        neuronxcc.__trnsim_alias__ = True  # type: ignore[attr-defined]
    neuronxcc.nki = _legacy  # type: ignore[attr-defined]
    for isa_module in (_isa, _legacy_isa):  # `import nki.isa.constants as c` looks the name up on nki.isa
        isa_module.constants = _isa_constants  # type: ignore[attr-defined]
    sys.modules.update(
        {
            "nki": _nki,
            "nki.language": _language,
            "nki.isa": _isa,
            "nki.isa.constants": _isa_constants,
            "nki.collectives": _collectives,
            "nki.typing": _typing,
            "nki.compiler": _compiler,
            "nki.dtype": _dtype,
            "nki.tensor": _tensor,
            "neuronxcc": neuronxcc,
            "neuronxcc.nki": _legacy,
            "neuronxcc.nki.language": _language,
            "neuronxcc.nki.isa": _legacy_isa,
            "neuronxcc.nki.isa.constants": _isa_constants,
            "neuronxcc.nki.typing": _typing,
            "neuronxcc.nki.compiler": _compiler,
        }
    )
