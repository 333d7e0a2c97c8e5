"""Aligning run B's hidden units to run A's: activation matching and weight matching.

Both return, per pair, a permutation set {free name: int32[n]} with perm[i] = B's unit matched
to A's unit i; `spec.permute(spec, B, perms)` then gives π(B), the same function as B.

* Activation matching (Li et al.; REPAIR): Pearson correlation of A's and B's activations at
  each matching site on the same inputs, then a linear assignment maximising the summed
  correlation. Permuting B never changes B's function, so every site's correlation comes from
  one joint forward pass of the original networks. A free permutation used by several sites
  (a residual stream) maximises the sum of their correlation blocks.
* Weight matching (Git Re-Basin): coordinate descent over permutations maximising
  Σ ⟨W_A, π(W_B)⟩ over all `params` tensors (BN statistics are not in the objective).

The assignments run on the host with scipy's Jonker–Volgenant solver (not jittable).
"""

from __future__ import annotations

import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from vmaptrain.connectivity.forward import forward
from vmaptrain.connectivity.spec import PermSpec

CORR_EPS = 1e-4  # REPAIR's guard against dead units in the correlation denominator


def _solve(objective: np.ndarray) -> np.ndarray:
    rows, cols = linear_sum_assignment(np.nan_to_num(objective), maximize=True)
    assert np.array_equal(rows, np.arange(len(rows)))
    return cols.astype(np.int32)


@functools.lru_cache(maxsize=16)
def _moments_fn(model, sites: tuple):
    def one_pair(var_a, var_b, x):
        _, out_a = forward(model, var_a, x, record=sites)
        _, out_b = forward(model, var_b, x, record=sites)
        moments = {}
        for site in sites:
            a = out_a["outputs"][site].reshape(-1, out_a["outputs"][site].shape[-1])
            b = out_b["outputs"][site].reshape(-1, out_b["outputs"][site].shape[-1])
            n = a.shape[0]
            # Per-batch means (divided before summing over batches) keep float32 sums short.
            moments[site] = (
                a.mean(0),
                b.mean(0),
                (a * a).mean(0),
                (b * b).mean(0),
                jnp.dot(a.T, b, precision="highest") / n,
            )
        return moments

    return jax.jit(jax.vmap(one_pair, in_axes=(0, 0, None)))


def correlations(model, spec: PermSpec, vars_a, vars_b, batches) -> dict:
    """{site: float64 [pairs, C, C]} Pearson correlations of A's units (rows) with B's (columns)."""
    sites = tuple(sorted(spec.sites))
    fn = _moments_fn(model, sites)
    total, count = None, 0
    for x in batches:
        m = jax.tree.map(lambda t: np.asarray(t, np.float64), fn(vars_a, vars_b, x))
        total = m if total is None else jax.tree.map(np.add, total, m)
        count += 1
    out = {}
    for site, (ma, mb, sa, sb, cross) in total.items():
        ma, mb, sa, sb, cross = (t / count for t in (ma, mb, sa, sb, cross))
        cov = cross - ma[..., :, None] * mb[..., None, :]
        std_a = np.sqrt(np.maximum(sa - ma**2, 0.0))
        std_b = np.sqrt(np.maximum(sb - mb**2, 0.0))
        out[site] = cov / (std_a[..., :, None] * std_b[..., None, :] + CORR_EPS)
    return out


def perms_from_correlations(spec: PermSpec, corr: dict, pair: int) -> dict:
    """Solve one LAP per free permutation from the summed correlation blocks of its sites."""
    objectives = {name: np.zeros((n, n)) for name, n in spec.sizes.items()}
    for site, label in spec.sites.items():
        for name, offset, n in spec.offsets(label):
            objectives[name] += corr[site][pair, offset : offset + n, offset : offset + n]
    unused = [name for name in spec.sizes if not any(name in label for label in spec.sites.values())]
    perms = {name: _solve(objectives[name]) for name in spec.sizes if name not in unused}
    perms.update({name: np.arange(spec.sizes[name], dtype=np.int32) for name in unused})
    return perms


def activation_matching(model, spec: PermSpec, vars_a, vars_b, batches) -> list[dict]:
    """Per pair (leading axis of vars_a / vars_b) the permutation set aligning B to A."""
    corr = correlations(model, spec, vars_a, vars_b, batches)
    pairs = next(iter(corr.values())).shape[0]
    return [perms_from_correlations(spec, corr, p) for p in range(pairs)]


def _take_all(spec, leaf, key, perms, skip_axis):
    for axis, label in enumerate(spec.axes.get(key, ())):
        if label is not None and axis != skip_axis:
            leaf = np.take(leaf, np.asarray(spec.full_index(label, perms)), axis=axis)
    return leaf


def weight_matching(spec: PermSpec, params_a, params_b, *, max_iter: int = 100, seed: int = 0) -> dict:
    """Git Re-Basin's coordinate descent for one pair of `params` trees (host numpy)."""
    flat_a = {
        ("params",) + k: np.asarray(v, np.float64)
        for k, v in flax.traverse_util.flatten_dict(flax.core.unfreeze(params_a)).items()
    }
    flat_b = {
        ("params",) + k: np.asarray(v, np.float64)
        for k, v in flax.traverse_util.flatten_dict(flax.core.unfreeze(params_b)).items()
    }
    slots = {name: [] for name in spec.sizes}  # free perm → [(key, axis, offset)]
    for key, labels in spec.axes.items():
        if key in flat_a:
            for axis, label in enumerate(labels):
                if label is not None:
                    for name, offset, _ in spec.offsets(label):
                        slots[name].append((key, axis, offset))
    perms = spec.identity()
    rng = np.random.default_rng(seed)
    names = sorted(spec.sizes)
    for _ in range(max_iter):
        progress = False
        for name in rng.permutation(names):
            n = spec.sizes[name]
            objective = np.zeros((n, n))
            for key, axis, offset in slots[name]:
                w_a = np.moveaxis(flat_a[key], axis, 0)[offset : offset + n].reshape(n, -1)
                w_b = _take_all(spec, flat_b[key], key, perms, axis)
                w_b = np.moveaxis(w_b, axis, 0)[offset : offset + n].reshape(n, -1)
                objective += w_a @ w_b.T
            new = _solve(objective)
            old_value = objective[np.arange(n), perms[name]].sum()
            new_value = objective[np.arange(n), new].sum()
            if new_value > old_value + 1e-12:
                perms[name], progress = new, True
        if not progress:
            break
    return perms


def stack_perms(perm_sets: list[dict]) -> dict:
    """[per-pair perm sets] → {name: int32 [pairs, n]} for a vmapped `permute`."""
    return {name: np.stack([p[name] for p in perm_sets]) for name in perm_sets[0]}
