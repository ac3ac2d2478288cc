"""Legacy index expressions: nl.arange, nl.mgrid, nl.ds, nl.par_dim.

Index expressions are integer numpy arrays that broadcast like numpy: `nl.arange(128)[:, None]` is a
partition index, `nl.arange(512)[None, :]` a free index; arithmetic and comparisons on them build
index arrays and masks.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from trnsim.errors import UsageError
from trnsim.nki.context import user_location
from trnsim.nki.tensor import DynSlice


def arange(*args: int) -> np.ndarray:
    return np.arange(*args, dtype=np.int64)


def ds(start: int, size: int) -> DynSlice:
    return DynSlice(start, size)


class ParDim(int):
    """An int that marks the partition dim of a shape (legacy block dims come before it)."""


def par_dim(n: int) -> ParDim:
    return ParDim(n)


class NcDim(int):
    """A launch-grid size whose programs go to that many physical cores: `kernel[nl.nc(2), 4]`."""


def nc(n: int) -> NcDim:
    try:
        size = operator.index(n)
    except TypeError:
        size = 0
    if size < 1 or isinstance(n, bool):
        raise UsageError(f"nl.nc(n) takes a positive int (cores for one grid dim), got {n!r}", user_location())
    return NcDim(size)


class _Grid(tuple):  # type: ignore[type-arg,unused-ignore]
    """Result of nl.mgrid[...]: unpackable, with .p/.x/.y/.z fields."""

    @property
    def p(self) -> np.ndarray:
        return self[0]

    @property
    def x(self) -> np.ndarray:
        return self[1]

    @property
    def y(self) -> np.ndarray:
        return self[2]

    @property
    def z(self) -> np.ndarray:
        return self[3]


class _MGrid:
    def __getitem__(self, key: Any) -> _Grid:
        keys = key if isinstance(key, tuple) else (key,)
        try:
            axes = [np.arange(k.start or 0, k.stop, k.step or 1, dtype=np.int64) for k in keys]
        except (AttributeError, TypeError, ValueError):
            raise UsageError(
                f"nl.mgrid takes integer slices such as nl.mgrid[0:128, 0:512], got {key!r}", user_location()
            ) from None
        return _Grid(np.meshgrid(*axes, indexing="ij", sparse=True))


mgrid = _MGrid()
