"""A small Levenberg-Marquardt least-squares solver in numpy (finite-difference Jacobian).

The fit has ~15 parameters and ~100 residuals, and the model has kinks (wave quantisation, the launch
floor), so a damped Gauss-Newton step with a numerical Jacobian is enough and keeps scipy optional.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

Vector = NDArray[np.float64]


def levenberg_marquardt(
    residuals: Callable[[Vector], Vector],
    x0: Vector,
    *,
    max_iter: int = 200,
    step: float = 1e-4,
    tol: float = 1e-10,
) -> tuple[Vector, float]:
    """Minimise sum(residuals(x)^2) from x0; returns (x, cost). x is unconstrained (transform bounds away)."""
    x = np.asarray(x0, dtype=np.float64).copy()
    r = residuals(x)
    cost = float(r @ r)
    lam = 1e-2
    for _ in range(max_iter):
        jac = np.empty((r.size, x.size))
        for j in range(x.size):
            h = step * max(1.0, abs(x[j]))
            xp = x.copy()
            xp[j] += h
            jac[:, j] = (residuals(xp) - r) / h
        a = jac.T @ jac
        g = jac.T @ r
        improved = False
        while lam < 1e10:
            delta = np.linalg.solve(a + lam * np.diag(np.diag(a) + 1e-12), -g)
            x_new = x + delta
            r_new = residuals(x_new)
            cost_new = float(r_new @ r_new)
            if np.isfinite(cost_new) and cost_new < cost:
                improved = True
                gain = cost - cost_new
                x, r, cost = x_new, r_new, cost_new
                lam = max(lam / 3, 1e-12)
                break
            lam *= 4
        if not improved or gain < tol * max(cost, 1e-30):
            break
    return x, cost
