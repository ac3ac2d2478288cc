"""The modules real kernels import besides nki.language / nki.isa: nki.typing, nki.compiler,
nki.isa.constants, nki.dtype, nl.NKIObject, and `install_aliases()` registering them under `nki.*` and
`neuronxcc.nki.*`. Kernels using them are checked against numpy.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import UsageError
from trnsim.nki import compiler as ncc
from trnsim.nki import typing as nt
from trnsim.nki.nki_object import NKIObject


def test_install_aliases_registers_every_submodule_kernels_import() -> None:
    nki.install_aliases()
    import neuronxcc.nki.compiler as legacy_ncc  # type: ignore[import-not-found]
    import neuronxcc.nki.typing as legacy_nt  # type: ignore[import-not-found]
    import nki.isa.constants as consts  # type: ignore[import-not-found]
    from nki.isa.constants import dge_mode, oob_mode  # type: ignore[import-not-found]

    assert legacy_ncc is ncc and legacy_nt is nt
    assert consts.oob_mode is oob_mode and dge_mode.hwdge.name == "hwdge"
    assert sys.modules["nki.typing"] is nt and sys.modules["nki.dtype"] is nki.dtype
    assert nki.dtype.bfloat16 == nl.bfloat16 and nki.dtype.float8_e8m0fnu.itemsize == 1


@dataclass
class TileConfig(NKIObject):
    rows: int
    scale: float
    dtype: object = nl.float32


class Plain(NKIObject):
    pass


@nki.jit
def scaled_copy(a: nt.tensor, cfg: TileConfig) -> nt.mutable_tensor[128, 64]:
    t = nl.ndarray((cfg.rows, a.shape[1]), dtype=cfg.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=a[0 : cfg.rows, :])
    s = nl.ndarray((cfg.rows, a.shape[1]), dtype=cfg.dtype, buffer=nl.sbuf)
    nisa.tensor_scalar(dst=s, data=t, op0=nl.multiply, operand0=cfg.scale)
    out = nl.ndarray((cfg.rows, a.shape[1]), dtype=cfg.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=s)
    return out


def test_nkiobject_dataclasses_and_typing_annotations_work_in_kernels(rng: np.random.Generator) -> None:
    a = rng.standard_normal((128, 64)).astype(np.float32)
    cfg = TileConfig(rows=int(rng.integers(1, 129)), scale=float(rng.uniform(-2, 2)))
    out = scaled_copy(a, cfg)
    np.testing.assert_allclose(out, a[: cfg.rows] * np.float32(cfg.scale), rtol=1e-6)
    p = Plain(x=1, y="z")
    assert (p.x, p.y) == (1, "z") and "x=1" in repr(p)
    assert isinstance(nl.ndarray, object) and nt.tensor[[128, 64], nl.float32].shape == (128, 64)


def test_nkiobject_rules() -> None:
    with pytest.raises(UsageError, match="keyword arguments only"):
        Plain(1)
    with pytest.raises(UsageError, match="reserved"):
        Plain(__class__=int)


@ncc.skip_middle_end_transformations
@nki.jit
def add_one(a):
    t = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=a)
    with ncc.no_reorder():
        nisa.tensor_scalar(dst=t, data=t, op0=nl.add, operand0=1.0)
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=t)
    return out


def test_compiler_decorators_and_directives_leave_the_kernel_unchanged(rng: np.random.Generator) -> None:
    a = rng.standard_normal((32, 16)).astype(np.float32)
    np.testing.assert_array_equal(add_one(a), a + np.float32(1))
    assert ncc.enable_stack_allocator()(add_one) is add_one and ncc.force_auto_alloc(add_one) is add_one


def test_compiler_placements_validate_their_arguments() -> None:
    buf = ncc.psum.mod_alloc(base_bank=2, num_bank_tiles=(2,))
    assert buf.base == 2 and buf.num_tiles == (2,) and ncc.memory_kind(buf) is nl.psum
    assert ncc.memory_kind(ncc.sbuf.alloc(lambda idx, p, f: (0, 0))) is nl.sbuf
    with pytest.raises(UsageError, match="base_bank"):
        ncc.psum.mod_alloc(base_addr=0)
    with pytest.raises(UsageError, match="placement function"):
        ncc.sbuf.alloc(3)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="cannot be negative"):
        ncc.sbuf.mod_alloc(base_addr=-4)
    with pytest.raises(UsageError, match="must be positive"):
        ncc.sbuf.mod_alloc(base_addr=0, num_free_tiles=(0,))
    with pytest.raises(UsageError, match="decorates a kernel"):
        ncc.skip_middle_end_transformations(5)  # type: ignore[arg-type]


def test_nc_versions_are_ordered() -> None:
    v = nisa.nc_version
    assert v.gen2 < v.gen3 < v.gen4 and v.gen4 >= v.gen3 and max(v.gen2, v.gen4) is v.gen4
    assert nisa.get_nc_version() >= v.gen2
    with pytest.raises(TypeError):
        _ = v.gen2 < 3
