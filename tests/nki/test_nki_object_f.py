"""nl.NKIObject subclasses get NKI's default initializer (NKI language guide, "Class Support").

"In NKI all classes are similar to Python data classes ... The @dataclass decorator is optional"; the
compiler creates `__init__(self, x=None, y=False)` over the fields and calls `__post_init__`. nki-library's
attention_cte declares `@dataclass class SectionParams(nl.NKIObject)` with plain class attributes
(`section_idx = None`) and builds it by keyword, which Python's dataclass alone refuses. Checked against
Python's own dataclass on random values where both apply, and in a kernel against numpy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import UsageError


@dataclass
class Section(nl.NKIObject):
    index = None  # plain class attributes, as nki-library writes them
    offset = 0
    has_prefix = None


@dataclass
class Tiles(nl.NKIObject):
    rows: int
    cols: int = 64
    scale: float = 1.0
    tags: list[int] = field(default_factory=list)
    area: int = field(init=False, default=0)
    LIMIT: ClassVar[int] = 128

    def __post_init__(self) -> None:
        self.area = self.rows * self.cols


@dataclass
class PyTiles:  # the same class without NKIObject: Python's dataclass, the reference
    rows: int
    cols: int = 64
    scale: float = 1.0
    tags: list[int] = field(default_factory=list)
    area: int = field(init=False, default=0)
    LIMIT: ClassVar[int] = 128

    def __post_init__(self) -> None:
        self.area = self.rows * self.cols


class Undecorated(nl.NKIObject):
    x: int
    y: bool = False

    def toggle(self) -> None:
        self.y = not self.y


class OwnInit(nl.NKIObject):
    def __init__(self, n: int) -> None:
        self.n = 2 * n


class FromOwnInit(OwnInit):
    extra = 5


def test_plain_class_attributes_are_fields_set_by_keyword(rng: np.random.Generator) -> None:
    i, off = int(rng.integers(0, 100)), int(rng.integers(0, 10_000))
    s = Section(index=i, offset=off)
    assert (s.index, s.offset, s.has_prefix) == (i, off, None)
    d = Section()
    assert (d.index, d.offset, d.has_prefix) == (None, 0, None)
    assert Section(i, off, True).has_prefix is True  # positional, in declaration order


def test_annotated_dataclass_matches_pythons_dataclass(rng: np.random.Generator) -> None:
    rows, cols, scale = int(rng.integers(1, 129)), int(rng.integers(1, 513)), float(rng.uniform(-2, 2))
    for args, kwargs in (((rows,), {}), ((rows, cols), {"scale": scale}), ((), {"rows": rows, "tags": [rows]})):
        ours, ref = Tiles(*args, **kwargs), PyTiles(*args, **kwargs)
        assert vars(ours) == vars(ref) == dataclasses.asdict(ref)
    a, b = Tiles(rows), Tiles(rows)
    a.tags.append(1)
    assert b.tags == [] and Tiles.LIMIT == 128 and "LIMIT" not in vars(a)
    assert a == Tiles(rows, tags=[1])  # the dataclass's __eq__ still applies


def test_without_dataclass_the_class_is_compiled_the_same_way() -> None:
    u = Undecorated(1)
    u.toggle()
    assert (u.x, u.y) == (1, True)
    assert Undecorated().x is None  # NKI: a field without a default starts as None


def test_a_users_own_init_is_kept() -> None:
    assert OwnInit(3).n == 6
    f = FromOwnInit(4)
    assert f.n == 8 and f.extra == 5


@nki.jit
def copy_section(a, sec: Section):
    rows = a.shape[0]
    out = nl.ndarray((rows, 64), dtype=a.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray((rows, 64), dtype=a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=a[:, sec.offset : sec.offset + 64])
    nisa.dma_copy(dst=out, src=t)
    return out


def test_a_config_object_built_by_keyword_drives_a_kernel(rng: np.random.Generator) -> None:
    a = rng.standard_normal((128, 512)).astype(np.float32)
    off = int(rng.integers(0, 512 - 64 + 1))
    got = nki.simulate(copy_section, target="trn2")(a, Section(index=0, offset=off))
    np.testing.assert_array_equal(got, a[:, off : off + 64])


def test_initializer_errors() -> None:
    with pytest.raises(UsageError, match=r"at most 3 positional argument\(s\) \(its fields in order: index, offset"):
        Section(1, 2, 3, 4)
    with pytest.raises(UsageError, match="'rows' by position and by keyword"):
        Tiles(1, rows=2)
    with pytest.raises(UsageError, match="reserved"):
        Section(__class__=int)
    with pytest.raises(UsageError, match="at most 4 positional"):  # `area` is field(init=False), LIMIT a ClassVar
        Tiles(1, 2, 3.0, [], 5)
