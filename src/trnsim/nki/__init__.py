"""trnsim.nki: the NKI-compatible kernel language.

`import trnsim.nki as nki; import trnsim.nki.language as nl; import trnsim.nki.isa as nisa` works like
the current NKI API; `trnsim.nki.install_aliases()` also makes `import nki` and the legacy
`import neuronxcc.nki` resolve here.
"""

from trnsim.nki import collectives, compiler, dtype, isa, language
from trnsim.nki import typing as typing
from trnsim.nki.kernel import (
    Kernel,
    TensorSpec,
    baremetal,
    benchmark,
    jit,
    launch,
    profile,
    simulate,
)
from trnsim.nki.legacy_launch import simulate_kernel  # writes what the kernel stored back into numpy arguments
from trnsim.nki.target import get_target_spec, set_target
from trnsim.nki.tensor import NkiTensor
from trnsim.runtime.instance_launch import TenantLaunch, run_ranks, run_tenants


def install_aliases() -> None:
    from trnsim.nki.aliases import install_aliases as _install

    _install()


__all__ = [
    "Kernel",
    "NkiTensor",
    "TenantLaunch",
    "TensorSpec",
    "baremetal",
    "benchmark",
    "collectives",
    "compiler",
    "dtype",
    "get_target_spec",
    "install_aliases",
    "isa",
    "jit",
    "language",
    "launch",
    "profile",
    "run_ranks",
    "run_tenants",
    "set_target",
    "simulate",
    "simulate_kernel",
    "typing",
]
