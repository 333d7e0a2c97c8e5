"""Repairing the variance collapse of interpolated networks.

* `reset_bn`: recompute every BatchNorm's statistics for θ(α) itself (from SWA, Izmailov et al. 2018;
  REPAIR, Jordan et al. 2023, applies it to interpolated BN networks). One pass over training data
  with each BN normalising by its batch's statistics, so downstream layers see correctly normalised
  inputs while upstream statistics are collected; the batch statistics are pooled into population
  mean/var (not Flax's EMA).
* `repair`: REPAIR's exact variant for preactivations (every conv/dense output but the
  classifier). Goal statistics interpolate the endpoints' channel means and *stds*:
  μ_goal = (1−α)μ_0 + αμ_1, σ_goal = (1−α)σ_0 + ασ_1 (α-weighted, so REPAIR is the identity at
  the endpoints). A measuring pass normalises each site with batch statistics and applies the
  goal affine, recording the raw statistics with all upstream sites already corrected; the
  result is a fixed per-channel affine (scale, shift) applied at evaluation. It needs no
  BatchNorm, so it also repairs networks without normalisation.
* `variance_ratio`: R_ℓ(α) = mean_c Var_α / ((1−α) mean_c Var_0 + α mean_c Var_1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vmaptrain.connectivity.forward import EPS
from vmaptrain.connectivity.passes import Pooled, bn_batch_fn, measure_fn


def reset_bn(model, nets, batches):
    """nets [P, A] with `batch_stats` replaced by the interpolated networks' true statistics."""
    fn = bn_batch_fn(model)
    pooled = Pooled()
    for x, _ in batches:
        pooled.add(fn(nets, x))
    stats = pooled.result()
    batch_stats = jax.tree.map(lambda a: a, nets["batch_stats"])  # a shallow rebuild we can edit

    def set_path(tree, parts, value):
        if len(parts) == 1:
            return {**tree, parts[0]: value}
        return {**tree, parts[0]: set_path(tree[parts[0]], parts[1:], value)}

    for path, (mean, var) in stats.items():
        parts = path.split("/")
        node = {"mean": jnp.asarray(mean, jnp.float32), "var": jnp.asarray(var, jnp.float32)}
        batch_stats = set_path(batch_stats, parts, node)
    return {**nets, "batch_stats": batch_stats}


def goals_from_endpoints(end0: dict, end1: dict, alphas) -> dict:
    """{site: (mean[P, C], var[P, C])} at α=0 and α=1 → {site: (μ_goal, σ_goal)} [P, A, C]."""
    a = np.asarray(alphas, np.float64)[None, :, None]
    goals = {}
    for site in end0:
        mu = (1 - a) * end0[site][0][:, None] + a * end1[site][0][:, None]
        sigma = (1 - a) * np.sqrt(end0[site][1])[:, None] + a * np.sqrt(end1[site][1])[:, None]
        goals[site] = (jnp.asarray(mu, jnp.float32), jnp.asarray(sigma, jnp.float32))
    return goals


def repair(model, nets, goals: dict, batches) -> dict:
    """Per-site (scale, shift) [P, A, C] that give θ(α)'s sites their goal statistics."""
    fn = measure_fn(model, tuple(sorted(goals)))
    pooled = Pooled()
    for x, _ in batches:
        pooled.add(fn((nets, goals), x))
    measured = pooled.result()
    correct = {}
    for site, (mu_goal, sigma_goal) in goals.items():
        mean, var = measured[site]
        scale = np.asarray(sigma_goal, np.float64) / np.sqrt(var + EPS)
        shift = np.asarray(mu_goal, np.float64) - scale * mean
        correct[site] = (jnp.asarray(scale, jnp.float32), jnp.asarray(shift, jnp.float32))
    return correct


def variance_ratio(stats: dict, sites, alphas) -> np.ndarray:
    """R_ℓ(α) [P, A, L] for `sites` (in order) from pooled {site: (mean, var) [P, A, C]}."""
    a = np.asarray(alphas, np.float64)[None, :]
    out = []
    for site in sites:
        layer_var = stats[site][1].mean(-1)  # [P, A]
        baseline = (1 - a) * layer_var[:, :1] + a * layer_var[:, -1:]
        out.append(layer_var / np.maximum(baseline, 1e-30))
    return np.stack(out, -1)
