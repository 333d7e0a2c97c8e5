"""The jitted passes over many networks at once: leaves carry leading axes [pairs, α].

Each pass is one forward of the instrumented model (`forward.forward`) vmapped over α and
over pairs, called once per data batch from a host loop (on XLA:CPU convolutions must stay
out of `lax.scan`). Per-batch results are combined on the host in float64.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from vmaptrain.connectivity.forward import batch_metrics, forward


def _grid_vmap(fn, shared: int):
    """vmap `fn(per_net, *shared)` over α (inner) and pairs (outer)."""
    in_axes = (0,) + (None,) * shared
    return jax.vmap(jax.vmap(fn, in_axes=in_axes), in_axes=in_axes)


@functools.lru_cache(maxsize=32)
def eval_fn(model, stat_sites: tuple, corrected: bool):
    """(nets[P,A], corrections | None, x, y) → loss sum, #correct, {site: (mean, var)}."""

    def one(net, x, y):
        variables, correct = net
        logits, out = forward(model, variables, x, stats=stat_sites, correct=correct if corrected else None)
        loss, right = batch_metrics(logits, y)
        return loss, right, out["stats"]

    return jax.jit(_grid_vmap(one, 2))


@functools.lru_cache(maxsize=32)
def bn_batch_fn(model):
    """nets[P,A], x → {bn path: (batch mean, batch var)} with BN in batch-statistics mode."""

    def one(variables, x):
        return forward(model, variables, x, bn_batch=True)[1]["bn"]

    return jax.jit(_grid_vmap(one, 1))


@functools.lru_cache(maxsize=32)
def measure_fn(model, sites: tuple):
    """(nets[P,A], goals) , x → raw {site: (mean, var)} with REPAIR's measuring correctors on."""

    def one(net, x):
        variables, goals = net
        return forward(model, variables, x, measure=goals)[1]["raw"]

    return jax.jit(_grid_vmap(one, 1))


class Pooled:
    """Per-channel mean/var pooled over equal-size batches (population statistics, float64)."""

    def __init__(self):
        self.sum_mean = self.sum_sq = None
        self.count = 0

    def add(self, stats: dict) -> None:
        mean = {k: np.asarray(m, np.float64) for k, (m, _) in stats.items()}
        sq = {k: np.asarray(v, np.float64) + np.asarray(m, np.float64) ** 2 for k, (m, v) in stats.items()}
        if self.sum_mean is None:
            self.sum_mean, self.sum_sq = mean, sq
        else:
            self.sum_mean = {k: self.sum_mean[k] + mean[k] for k in mean}
            self.sum_sq = {k: self.sum_sq[k] + sq[k] for k in sq}
        self.count += 1

    def result(self) -> dict:
        out = {}
        for k in self.sum_mean:
            mean = self.sum_mean[k] / self.count
            out[k] = (mean, np.maximum(self.sum_sq[k] / self.count - mean**2, 0.0))
        return out
