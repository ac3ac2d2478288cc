"""The trnsim compiler: PyTorch model -> ATen graph -> library kernels on the simulated chip."""

from trnsim.compiler.api import compile
from trnsim.compiler.backend import register, trnsim_backend
from trnsim.compiler.executable import Executable
from trnsim.compiler.lowering.table import register_lowering

__all__ = ["Executable", "compile", "register", "register_lowering", "trnsim_backend"]

register()
