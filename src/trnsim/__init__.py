"""trnsim: an open, simulated Trainium-class AI accelerator and its software stack.

`trnsim.compile`, `trnsim.estimate`, `trnsim.last_profile` and `trnsim.register_lowering` load the compiler
(and torch) on first use, so `import trnsim` stays light for the kernel language and the CLI.
"""

from typing import Any

__version__ = "0.1.0"

_COMPILER_API = {
    "compile": "trnsim.compiler.api",
    "estimate": "trnsim.compiler.estimate",
    "register_lowering": "trnsim.compiler.lowering.table",
    "last_profile": "trnsim.runtime.last_profile",
}


def __getattr__(name: str) -> Any:
    if name in _COMPILER_API:
        import importlib

        if name != "last_profile":
            importlib.import_module("trnsim.compiler")  # registers the torch.compile backend
        return getattr(importlib.import_module(_COMPILER_API[name]), name)
    raise AttributeError(f"module 'trnsim' has no attribute {name!r}")
