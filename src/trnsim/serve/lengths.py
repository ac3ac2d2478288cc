"""Token-length distributions for prompts and outputs: fixed, uniform, or Zipf (bounded, heavy-tailed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trnsim.serve.errors import ServeError


@dataclass(frozen=True)
class Fixed:
    tokens: int

    def __post_init__(self) -> None:
        _check_range("Fixed", self.tokens, self.tokens)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.tokens, dtype=np.int64)

    @property
    def max_tokens(self) -> int:
        return self.tokens


@dataclass(frozen=True)
class Uniform:
    """Whole numbers from low to high, both included, equally likely."""

    low: int
    high: int

    def __post_init__(self) -> None:
        _check_range("Uniform", self.low, self.high)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(self.low, self.high + 1, size=n, dtype=np.int64)

    @property
    def max_tokens(self) -> int:
        return self.high


@dataclass(frozen=True)
class Zipf:
    """Whole numbers from low to high with P(L) proportional to L**-s: mostly short, a few long."""

    s: float
    low: int
    high: int

    def __post_init__(self) -> None:
        _check_range("Zipf", self.low, self.high)
        if not self.s > 0:
            raise ServeError(f"Zipf exponent s must be > 0, got {self.s}")
        if self.high - self.low > 10_000_000:
            raise ServeError(f"Zipf range {self.low}..{self.high} is too wide (at most 10 million values)")

    def pmf(self) -> tuple[np.ndarray, np.ndarray]:
        """The support and its probabilities."""
        support = np.arange(self.low, self.high + 1, dtype=np.int64)
        weights = support.astype(np.float64) ** -self.s
        return support, weights / weights.sum()

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        support, p = self.pmf()
        return rng.choice(support, size=n, p=p)

    @property
    def max_tokens(self) -> int:
        return self.high


Lengths = Fixed | Uniform | Zipf


def _check_range(kind: str, low: int, high: int) -> None:
    if int(low) != low or int(high) != high or low < 1 or high < low:
        raise ServeError(f"{kind} token lengths need whole numbers 1 <= low <= high, got low={low}, high={high}")
