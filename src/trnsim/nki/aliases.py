"""Make `import nki` and `import neuronxcc.nki` resolve to trnsim, so public kernels run unchanged."""

from __future__ import annotations

import sys
import types

import trnsim.nki as _nki
from trnsim.nki import isa as _isa
from trnsim.nki import language as _language
from trnsim.nki import legacy as _legacy
from trnsim.nki import legacy_isa as _legacy_isa


def install_aliases() -> None:
    """Register nki, nki.language, nki.isa, neuronxcc, neuronxcc.nki(.language/.isa) in sys.modules."""
    neuronxcc = sys.modules.get("neuronxcc")
    if neuronxcc is None or not getattr(neuronxcc, "__trnsim_alias__", False):
        neuronxcc = types.ModuleType("neuronxcc", "trnsim alias of neuronxcc (the Neuron compiler package)")
        neuronxcc.__path__ = []  # a package, so submodule imports work
        neuronxcc.__trnsim_alias__ = True  # type: ignore[attr-defined]
    neuronxcc.nki = _legacy  # type: ignore[attr-defined]
    sys.modules.update(
        {
            "nki": _nki,
            "nki.language": _language,
            "nki.isa": _isa,
            "neuronxcc": neuronxcc,
            "neuronxcc.nki": _legacy,
            "neuronxcc.nki.language": _language,
            "neuronxcc.nki.isa": _legacy_isa,
        }
    )
