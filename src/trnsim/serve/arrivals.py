"""When requests arrive: open-loop Poisson or Gamma processes at a rate, or a closed loop of fixed concurrency."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trnsim.serve.errors import ServeError


@dataclass(frozen=True)
class Poisson:
    """Exponential gaps between arrivals, mean 1/rate."""

    rate: float  # requests per second

    def __post_init__(self) -> None:
        _check_rate(self.rate)

    def times(self, rng: np.random.Generator, n: int) -> np.ndarray:
        # Scaled standard draws: the same seed at another rate gives the same arrivals, stretched.
        return np.cumsum(rng.standard_exponential(n) / self.rate)

    def with_rate(self, rate: float) -> Poisson:
        return Poisson(rate)


@dataclass(frozen=True)
class GammaArrivals:
    """Gamma-distributed gaps with mean 1/rate and coefficient of variation cv (cv=1 is Poisson, >1 bursty)."""

    rate: float
    cv: float

    def __post_init__(self) -> None:
        _check_rate(self.rate)
        if not self.cv > 0:
            raise ServeError(f"GammaArrivals cv must be > 0, got {self.cv}")

    def times(self, rng: np.random.Generator, n: int) -> np.ndarray:
        shape = 1.0 / self.cv**2  # Gamma(k, theta): cv = 1/sqrt(k), mean = k * theta
        return np.cumsum(rng.standard_gamma(shape, n) / (shape * self.rate))

    def with_rate(self, rate: float) -> GammaArrivals:
        return GammaArrivals(rate, self.cv)


@dataclass(frozen=True)
class ClosedLoop:
    """`concurrency` clients, each sending its next request the moment its previous one finishes."""

    concurrency: int

    def __post_init__(self) -> None:
        if int(self.concurrency) != self.concurrency or self.concurrency < 1:
            raise ServeError(f"ClosedLoop concurrency must be a whole number >= 1, got {self.concurrency}")


Arrivals = Poisson | GammaArrivals | ClosedLoop
OpenArrivals = Poisson | GammaArrivals


def _check_rate(rate: float) -> None:
    if not (rate > 0 and np.isfinite(rate)):
        raise ServeError(f"arrival rate must be a finite number of requests/s > 0, got {rate}")
