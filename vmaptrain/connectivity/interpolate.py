"""Linear interpolation of whole states and the three barrier variants.

θ(α) = (1−α)·θ_A + α·θ_B over *every* tensor, BN running statistics included (they are then
wrong for θ(α); see `repair`). Barriers are computed from curves f(α) of a metric:

* max_minus_mean:  max_α f(α) − ½(f(0) + f(1))                      (Frankle et al.; Git Re-Basin)
* max_gap_to_line: max_α [f(α) − ((1−α) f(0) + α f(1))]              (Entezari et al.)
* midpoint:        f(½) − ½(f(0) + f(1))                              (REPAIR)

For accuracy the sign flips (a barrier is a *drop* in accuracy), so every barrier is
"how much worse than the endpoints", positive when there is a barrier.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vmaptrain.connectivity.errors import ConnectivityError

BARRIER_VARIANTS = ("max_minus_mean", "max_gap_to_line", "midpoint")


def alpha_grid(alphas) -> np.ndarray:
    """Validate an α grid: odd length ≥ 3, sorted, in [0, 1], starting at 0, ending at 1, holding ½."""
    if isinstance(alphas, int):
        if alphas < 3 or alphas % 2 == 0:
            raise ConnectivityError(f"the α grid needs an odd number ≥ 3 of points (so that ½ is on it), got {alphas}")
        return np.linspace(0.0, 1.0, alphas)
    grid = np.asarray(alphas, np.float64)
    if grid.ndim != 1 or len(grid) < 3 or len(grid) % 2 == 0:
        raise ConnectivityError(f"the α grid needs an odd number ≥ 3 of points, got {len(np.atleast_1d(grid))}")
    if not np.all(np.isfinite(grid)) or np.any(np.diff(grid) <= 0):
        raise ConnectivityError("the α grid must be finite and strictly increasing")
    if grid[0] != 0.0 or grid[-1] != 1.0:
        raise ConnectivityError(f"the α grid must start at 0 and end at 1, got {grid[0]}…{grid[-1]}")
    if not np.any(np.isclose(grid, 0.5, atol=1e-12)):
        raise ConnectivityError("the α grid must contain ½ (the midpoint barrier is read there)")
    return grid


def lerp(a, b, alpha):
    """(1−α)·a + α·b over a whole pytree (params and batch statistics)."""
    return jax.tree.map(lambda x, y: (1.0 - alpha) * x + alpha * y, a, b)


def lerp_grid(a, b, alphas):
    """θ(α) for every α, stacked on a new leading axis (vmapped over α)."""
    return jax.vmap(lerp, in_axes=(None, None, 0))(a, b, jnp.asarray(alphas, jnp.float32))


def barriers(curve, alphas, *, higher_is_worse: bool = True) -> dict:
    """The three barrier variants of curves [..., n_alpha] → {variant: array [...]}."""
    f = np.asarray(curve, np.float64)
    f = f if higher_is_worse else -f
    alphas = np.asarray(alphas, np.float64)
    ends = 0.5 * (f[..., 0] + f[..., -1])
    line = (1 - alphas) * f[..., :1] + alphas * f[..., -1:]
    mid = int(np.argmin(np.abs(alphas - 0.5)))
    return {
        "max_minus_mean": f.max(-1) - ends,
        "max_gap_to_line": (f - line).max(-1),
        "midpoint": f[..., mid] - ends,
    }


def relative_reduction(before, after):
    """(B_before − B_after) / B_before; NaN where there was no barrier to reduce."""
    before, after = np.asarray(before, np.float64), np.asarray(after, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(before > 0, (before - after) / before, np.nan)
