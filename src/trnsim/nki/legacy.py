"""`neuronxcc.nki` (legacy NKI entry points): jit, simulate_kernel, benchmark, baremetal, profile."""

from trnsim.nki import compiler, language
from trnsim.nki import legacy_isa as isa
from trnsim.nki import typing as typing
from trnsim.nki.kernel import Kernel, TensorSpec, baremetal, benchmark, jit, profile, simulate
from trnsim.nki.legacy_launch import simulate_kernel, trace
from trnsim.nki.tensor import NkiTensor as tensor

__all__ = [
    "Kernel",
    "TensorSpec",
    "baremetal",
    "benchmark",
    "compiler",
    "isa",
    "jit",
    "language",
    "profile",
    "simulate",
    "simulate_kernel",
    "tensor",
    "trace",
    "typing",
]
