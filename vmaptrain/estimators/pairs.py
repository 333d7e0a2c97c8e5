"""Pairwise independence test over examples (Calibrated Chaos §3.2, Fig. 13; docs/statistics.md §10).

For examples i, j let p_i be the fraction of runs correct on i and J_ij the fraction correct
on both. A pair deviates when |J_ij − p_i p_j| > t (default t = 0.02, as in the paper).

Computation. Only examples with t < p < 1 − t can take part in a deviating pair: the
Fréchet bounds give |J_ij − p_i p_j| ≤ min(p_i, 1−p_i, p_j, 1−p_j) for any sample, so this
prune is exact. The co-correctness counts N = AᵀA of the 0/1 matrix A of those columns are
built chunk by chunk over runs with bf16 matmuls (0/1 exact in bf16, float32 accumulation
exact below 2^24 runs), only for the upper-triangular blocks (half the FLOPs). Deviation, threshold test, null
expectation and the top pairs are then evaluated on row blocks of N in one jitted kernel. The threshold test
|R·N_ij − c_i c_j| ≥ ⌊tR²⌋ + 1 is exact integer arithmetic (uint32) for R ≤ 65,535.

Null expectation. Under independence of the two examples' correctness across runs, and
conditionally on the observed margins c_i, c_j (runs are exchangeable), the joint count is
hypergeometric: N_ij ~ Hyp(R, c_i, c_j), with mean c_i c_j / R and
SE(D̂_ij) = √(p_i q_i p_j q_j / (R − 1)). The pair deviates when R·N − c_i c_j > tR²
(upper tail) or < −tR² (lower tail); both tails are evaluated exactly (for a study's few runs
by summing hypergeometric masses from log-factorials, `hypergeometric_tails`; for many runs,
scipy's hypergeometric sf/cdf). The expected count is the sum over candidate pairs; pairs outside the
candidate set cannot deviate and contribute 0. The exact tails matter at small R: there the
normal approximation overstates the count by 10-25% (checked by simulation). To bound the
cost, candidates are grouped by their count c (exact when there are at most `max_groups`
distinct counts, otherwise `max_groups` equal-size groups of the sorted counts, each
represented by its median), so the tails are evaluated for at most max_groups²/2 pairs.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.jit, static_argnames=("block",), donate_argnums=(0,))
def _add_upper_gram(gram, chunk, *, block):
    """gram += chunkᵀ chunk on the block upper triangle only (the lower one is never read)."""
    x = chunk.astype(jnp.bfloat16)
    # An explicit transpose then a plain matmul is ~2x faster on XLA:CPU than a dot_general
    # contracting the leading axes of both operands.
    x_t = x.T
    for first in range(0, x.shape[1], block):
        product = jnp.dot(x_t[first : first + block], x[:, first:], preferred_element_type=jnp.float32)
        gram = gram.at[first : first + block, first:].add(product)
    return gram


# Below this many runs R·N and c_i·c_j (both ≤ R²) fit in uint32, so the threshold test is
# exact integer arithmetic. Above it, float32 is used and exact ties |D| = t may go either way.
_EXACT_MAX_RUNS = 65_535


def deviation_bound(num_runs: int, threshold: float) -> int:
    """B = ⌊t·R²⌋ + 1: a pair deviates iff |R·N_ij − c_i c_j| ≥ B, i.e. |D_ij| > t."""
    return int(np.floor(threshold * float(num_runs) ** 2)) + 1


@functools.partial(jax.jit, static_argnames=("block", "top_k", "exact"))
def _compare_rows(gram, counts, num_valid, first_row, num_runs, bound, *, block, top_k, exact):
    """Deviation count and per-row top pairs for candidate rows [first_row, first_row+block)."""
    width = gram.shape[1]
    rows = jax.lax.dynamic_slice_in_dim(gram, first_row, block, axis=0)
    c_i = jax.lax.dynamic_slice_in_dim(counts, first_row, block)[:, None]
    c_j = counts[None, :]
    i = first_row + jnp.arange(block)[:, None]
    j = jnp.arange(width)[None, :]
    mask = (j > i) & (j < num_valid)
    if exact:
        scaled = rows.astype(jnp.uint32) * num_runs.astype(jnp.uint32)  # R·N
        product = c_i.astype(jnp.uint32) * c_j.astype(jnp.uint32)  # c_i c_j
        above = (scaled >= product) & (scaled - product >= bound)
        below = (product >= scaled) & (product - scaled >= bound)
        exceeds = mask & (above | below)
    else:
        exceeds = mask & (jnp.abs(rows * num_runs - c_i * c_j) >= bound.astype(jnp.float32))
    deviation = rows - c_i * c_j / num_runs  # N − c_i c_j / R, in runs
    score = jnp.where(mask, jnp.abs(deviation), -1.0)
    top_scores, top_columns = jax.lax.top_k(score, top_k)
    return jnp.sum(exceeds, dtype=jnp.int32), top_scores, top_columns


# Up to this many (pair, outcome) cells the tails are summed in numpy (`hypergeometric_tails`,
# ~0.1 s); beyond, scipy's hypergeometric sf/cdf.
_NUMPY_TAIL_CELLS = 1 << 23


def expected_deviating_pairs(
    candidate_counts: np.ndarray, num_runs: int, threshold: float, max_groups: int = 256
) -> float:
    """Expected number of deviating pairs under independence, given the margins (module doc)."""
    counts = np.sort(np.asarray(candidate_counts, np.int64))
    values, sizes = np.unique(counts, return_counts=True)
    if values.size > max_groups:
        groups = np.array_split(counts, max_groups)
        values = np.array([int(np.median(g)) for g in groups], np.int64)
        sizes = np.array([g.size for g in groups], np.int64)
    a, b = np.triu_indices(values.size)
    weight = np.where(a == b, sizes[a] * (sizes[a] - 1) / 2.0, sizes[a] * sizes[b] * 1.0)
    c_i, c_j = values[a], values[b]
    product = c_i * c_j
    bound = deviation_bound(num_runs, threshold)
    upper = -(-(product + bound) // num_runs)  # smallest N with R·N − c_i c_j ≥ B
    lower = (product - bound) // num_runs  # largest N with c_i c_j − R·N ≥ B
    if c_i.size * (int(np.minimum(c_i, c_j).max(initial=0)) + 1) <= _NUMPY_TAIL_CELLS:
        prob = hypergeometric_tails(num_runs, c_i, c_j, upper, lower)
    else:  # many runs: scipy's tails cost less than summing every mass
        from scipy.stats import hypergeom  # here, not at import: scipy.stats costs ~2 s to import

        prob = hypergeom.sf(upper - 1, num_runs, c_i, c_j) + hypergeom.cdf(lower, num_runs, c_i, c_j)
    return float(np.sum(weight * prob))


def hypergeometric_tails(population: int, successes, draws, upper, lower, max_cells: int = 1 << 22) -> np.ndarray:
    """P(X ≥ upper) + P(X ≤ lower) for X ~ Hyp(population, successes, draws), elementwise.

    Exact up to float64 rounding (relative 1e-10 at R = 5,000): every probability mass
    C(c_i, k) C(R − c_i, c_j − k) / C(R, c_j) from a table of log-factorials, summed over the
    support. Numpy alone: scipy.stats costs ~2 s to import, more than this whole evaluation
    for a study's few runs.
    """
    successes, draws, upper, lower = (np.atleast_1d(np.asarray(a, np.int64)) for a in (successes, draws, upper, lower))
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, population + 1, dtype=np.float64)))])

    def log_choose(n, k):
        return log_factorial[n] - log_factorial[k] - log_factorial[n - k]

    top = int(np.minimum(successes, draws).max(initial=0))
    k = np.arange(top + 1, dtype=np.int64)[None, :]
    rows = max(1, max_cells // (top + 1))
    out = np.empty(successes.shape, np.float64)
    for start in range(0, successes.size, rows):
        part = slice(start, start + rows)
        c_i, c_j = successes[part, None], draws[part, None]
        low, high = np.maximum(0, c_i + c_j - population), np.minimum(c_i, c_j)
        inside = (k >= low) & (k <= high)
        kk = np.where(inside, k, low)  # any index inside the support: masked out below
        log_mass = log_choose(c_i, kk) + log_choose(population - c_i, c_j - kk) - log_choose(population, c_j)
        mass = np.where(inside, np.exp(log_mass), 0.0)
        tails = (k >= upper[part, None]) | (k <= lower[part, None])
        out[part] = np.sum(np.where(tails, mass, 0.0), axis=1)
    return out


def _round_up(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple


def pair_independence_test(
    correct,
    *,
    threshold: float = 0.02,
    top_k: int = 10,
    example_correct: np.ndarray | None = None,
    chunk_runs: int = 2048,
) -> dict:
    """Counts example pairs whose joint correctness deviates from independence by > threshold.

    Args:
      correct: [R, n] 0/1 correctness (numpy array or memmap).
      threshold: t, in probability units (0.02 = 2 percentage points).
      top_k: number of most-deviating pairs to return.
      example_correct: [n] column sums of `correct`, if already known.
      chunk_runs: runs per matmul chunk.

    Returns:
      `deviating` (count over all n(n-1)/2 pairs), `expected` (its expectation under
      independence at this R, see module doc), `uncertain_examples` (0 < p < 1),
      `candidate_examples` (t < p < 1 − t), `top_pairs` (list of dicts with example indices i
      < j, p_i, p_j, product, joint, deviation = joint − product, sorted by |deviation|).
    """
    num_runs, num_examples = correct.shape
    if example_correct is None:
        example_correct = np.zeros(num_examples, np.int64)
        for start in range(0, num_runs, chunk_runs):
            example_correct += np.asarray(correct[start : start + chunk_runs]).sum(axis=0)
    example_correct = np.asarray(example_correct, np.int64)
    fraction = example_correct / num_runs
    candidates = np.flatnonzero((fraction > threshold) & (fraction < 1.0 - threshold))
    result = {
        "deviating": 0,
        "expected": 0.0,
        "uncertain_examples": int(np.sum((example_correct > 0) & (example_correct < num_runs))),
        "candidate_examples": int(candidates.size),
        "top_pairs": [],
    }
    if candidates.size < 2:
        return result

    block = min(1024, _round_up(candidates.size, 128))
    width = _round_up(candidates.size, block)
    gram = jnp.zeros((width, width), jnp.float32)
    rows = min(chunk_runs, num_runs)
    for start in range(0, num_runs, rows):
        stop = min(start + rows, num_runs)
        chunk = np.zeros((rows, width), np.uint8)
        chunk[: stop - start, : candidates.size] = np.asarray(correct[start:stop])[:, candidates]
        gram = _add_upper_gram(gram, chunk, block=block)

    counts = np.zeros(width, np.float32)
    counts[: candidates.size] = example_correct[candidates]
    counts = jnp.asarray(counts)
    k = min(top_k, width)
    bound = (
        np.uint32(deviation_bound(num_runs, threshold))
        if num_runs <= _EXACT_MAX_RUNS
        else np.float32(deviation_bound(num_runs, threshold))
    )
    deviating, tops = 0, []
    for first_row in range(0, candidates.size, block):
        n_dev, scores, columns = jax.device_get(
            _compare_rows(
                gram,
                counts,
                candidates.size,
                first_row,
                num_runs,
                bound,
                block=block,
                top_k=k,
                exact=num_runs <= _EXACT_MAX_RUNS,
            )
        )
        deviating += int(n_dev)
        row_index = np.broadcast_to(first_row + np.arange(block)[:, None], scores.shape)
        keep = scores >= 0
        tops.append((scores[keep], row_index[keep], columns[keep]))
    result["deviating"] = deviating
    result["expected"] = expected_deviating_pairs(example_correct[candidates], num_runs, threshold)
    result["top_pairs"] = _top_pairs(tops, gram, candidates, example_correct, num_runs, top_k)
    return result


def _top_pairs(tops, gram, candidates, example_correct, num_runs, top_k) -> list[dict]:
    scores = np.concatenate([t[0] for t in tops])
    rows = np.concatenate([t[1] for t in tops])
    columns = np.concatenate([t[2] for t in tops])
    order = np.lexsort((columns, rows, -scores))[:top_k]  # ties broken by index: deterministic
    pairs = []
    for a, b in zip(rows[order], columns[order]):
        i, j = int(candidates[a]), int(candidates[b])
        p_i, p_j = example_correct[i] / num_runs, example_correct[j] / num_runs
        joint = float(gram[a, b]) / num_runs
        pairs.append(
            {
                "i": i,
                "j": j,
                "p_i": float(p_i),
                "p_j": float(p_j),
                "product": float(p_i * p_j),
                "joint": joint,
                "deviation": joint - float(p_i * p_j),
            }
        )
    return pairs
