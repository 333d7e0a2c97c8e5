"""Pairs of runs of a finished study: validation, selection and stacking."""

from __future__ import annotations

import itertools

import jax
import numpy as np

from vmaptrain.connectivity.errors import ConnectivityError


def run_variables(state) -> dict:
    """A (stacked) RunState → the variables dict the model applies with."""
    return {"params": state.params, "batch_stats": state.batch_stats}


def check_pairs(num_runs: int, pairs) -> list[tuple[int, int]]:
    checked = []
    for pair in pairs:
        if len(pair) != 2:
            raise ConnectivityError(f"a pair names two runs, got {pair}")
        i, j = (int(p) for p in pair)
        for k in (i, j):
            if not 0 <= k < num_runs:
                raise ConnectivityError(f"pair ({i}, {j}): run index {k} is out of range for {num_runs} runs")
        if i == j:
            raise ConnectivityError(f"pair ({i}, {j}) compares a run with itself")
        checked.append((i, j))
    if not checked:
        raise ConnectivityError("no pairs to compare")
    return checked


def all_pairs(num_runs: int, max_pairs: int | None = None) -> list[tuple[int, int]]:
    """Unordered pairs i < j (B = j is aligned to A = i), at most `max_pairs` of them."""
    if num_runs < 2:
        raise ConnectivityError(f"comparing runs needs at least 2 runs, got {num_runs}")
    pairs = list(itertools.combinations(range(num_runs), 2))
    return pairs[:max_pairs] if max_pairs else pairs


def check_same_model(variables_a, variables_b) -> None:
    """Two runs can be interpolated only if every tensor matches in name and shape."""
    shapes_a = jax.tree_util.tree_flatten_with_path(variables_a)[0]
    shapes_b = jax.tree_util.tree_flatten_with_path(variables_b)[0]
    sig_a = [(jax.tree_util.keystr(k), tuple(getattr(v, "shape", np.shape(v)))) for k, v in shapes_a]
    sig_b = [(jax.tree_util.keystr(k), tuple(getattr(v, "shape", np.shape(v)))) for k, v in shapes_b]
    if sig_a != sig_b:
        diff = next((f"{a} vs {b}" for a, b in zip(sig_a, sig_b) if a != b), "different numbers of tensors")
        raise ConnectivityError(f"the runs are of different models and cannot be interpolated ({diff})")


def gather_pairs(stacked, pairs) -> tuple:
    """Stacked seeds [S, …] → (A [P, …], B [P, …]) for `pairs`."""
    left = np.asarray([i for i, _ in pairs])
    right = np.asarray([j for _, j in pairs])
    return (jax.tree.map(lambda a: np.asarray(a)[left], stacked), jax.tree.map(lambda a: np.asarray(a)[right], stacked))


def make_batches(images, labels, mean, std, *, count: int, batch: int) -> list:
    """The first `count` examples as normalised float32 batches of equal size `batch`."""
    from vmaptrain.data import normalize

    count = min(count, len(images))
    batch = min(batch, count)
    usable = (count // batch) * batch  # equal batches keep pooled statistics exact
    out = []
    for start in range(0, usable, batch):
        x = normalize(np.asarray(images[start : start + batch]), mean, std)
        out.append((x, jax.numpy.asarray(np.asarray(labels[start : start + batch], np.int32))))
    return out
