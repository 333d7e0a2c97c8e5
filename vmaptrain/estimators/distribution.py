"""Distribution-wise variance Var_h(err(h)) (Calibrated Chaos §3.3, Theorem 2; docs/statistics.md §3).

Three estimators, all unbiased jointly over the i.i.d. test set and the R runs:

* `distribution_variance` (Theorem 2 at finite R): σ̂² = n/(n-1) · (s² − V̂_ind), with s²
  the ddof=1 variance of accuracy over runs and V̂_ind the R/(R-1)-corrected
  independent-errors variance. Signed: it can be negative; report std = √max(σ̂², 0).
* `distribution_variance_covariance_form`: the mean off-diagonal ddof=1 covariance of the
  per-example error indicators, (1/(n(n-1))) Σ_{i≠j} Cov(e_i, e_j). Algebraically identical
  to the Theorem 2 form (exactly, for every sample), but O(n²): for checks only.
* `split_half_covariance`: Cov_r(err_S1, err_S2) (ddof=1) between the even- and
  odd-indexed halves. Every cross pair is two distinct examples, so it is unbiased for the
  same quantity; it agrees with σ̂² only in expectation.

The bootstrap over runs resamples runs with multinomial weights w_b. The only O(R·n) part
is T_b = Σ_r w_br C_r (weighted per-example correct counts), one bf16 matmul per chunk of
runs over the uncertain examples (0/1 and small integer weights are exact in bf16;
float32 accumulation is exact below 2^24). The rest is O(B·(R + n)) in float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vmaptrain.estimators.independence import independent_errors_variance


def distribution_variance(run_correct: np.ndarray, example_correct: np.ndarray, num_examples: int) -> np.ndarray:
    """Unbiased signed estimate σ̂² of the distribution-wise variance of accuracy.

    Args:
      run_correct: [..., R] correct count per run.
      example_correct: [..., n] number of runs correct on each example.
      num_examples: n.
    """
    accuracy = np.asarray(run_correct, np.float64) / num_examples
    num_runs = accuracy.shape[-1]
    test_set_var = accuracy.var(axis=-1, ddof=1)
    independent_var = independent_errors_variance(example_correct, num_runs)
    return num_examples / (num_examples - 1) * (test_set_var - independent_var)


def distribution_std(variance) -> np.ndarray:
    """Display std √max(σ̂², 0) of a signed variance estimate."""
    return np.sqrt(np.maximum(variance, 0.0))


def distribution_variance_covariance_form(correct: np.ndarray) -> float:
    """Mean off-diagonal ddof=1 covariance of the error indicators; O(R·n²), checks only."""
    errors = 1.0 - np.asarray(correct, np.float64)
    num_runs, num_examples = errors.shape
    centred = errors - errors.mean(axis=0)
    covariance = centred.T @ centred / (num_runs - 1)
    off_diagonal = covariance.sum() - np.trace(covariance)
    return float(off_diagonal / (num_examples * (num_examples - 1)))


def split_half_covariance(accuracy_a: np.ndarray, accuracy_b: np.ndarray) -> np.ndarray:
    """ddof=1 covariance over runs of the accuracies on two disjoint example halves."""
    a = np.asarray(accuracy_a, np.float64)
    b = np.asarray(accuracy_b, np.float64)
    num_runs = a.shape[-1]
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    return (a * b).sum(axis=-1) / (num_runs - 1)


def bootstrap_weights(num_runs: int, num_resamples: int, seed: int) -> np.ndarray:
    """Multinomial resampling counts [B, R] (uint8) from numpy's PCG64 seeded with `seed`."""
    rng = np.random.default_rng(seed)
    weights = np.empty((num_resamples, num_runs), np.uint8)
    block = max(1, 2**24 // num_runs)
    for start in range(0, num_resamples, block):
        rows = min(block, num_resamples - start)
        draws = rng.integers(0, num_runs, size=(rows, num_runs))
        flat = (draws + num_runs * np.arange(rows)[:, None]).ravel()
        counts = np.bincount(flat, minlength=rows * num_runs)
        if counts.max() > 255:  # not reachable for sane R; uint8 would silently wrap
            raise ValueError("bootstrap weight above 255")
        weights[start : start + rows] = counts.reshape(rows, num_runs)
    return weights


@jax.jit
def _add_weighted_counts(total, weights, correct):
    return total + jnp.dot(
        weights.astype(jnp.bfloat16), correct.astype(jnp.bfloat16), preferred_element_type=jnp.float32
    )


def weighted_example_counts(correct, weights: np.ndarray, columns: np.ndarray, chunk_runs: int = 2048) -> np.ndarray:
    """T[b, j] = Σ_r weights[b, r] · correct[r, columns[j]], streamed over chunks of runs."""
    num_runs = correct.shape[0]
    rows = min(chunk_runs, num_runs)
    total = jnp.zeros((weights.shape[0], columns.size), jnp.float32)
    for start in range(0, num_runs, rows):
        stop = min(start + rows, num_runs)
        w = np.zeros((weights.shape[0], rows), np.uint8)
        w[:, : stop - start] = weights[:, start:stop]
        c = np.zeros((rows, columns.size), np.uint8)
        c[: stop - start] = np.asarray(correct[start:stop])[:, columns]
        total = _add_weighted_counts(total, w, c)
    return np.asarray(total, np.float64)


def _row_and_column_sums(correct, chunk_runs: int) -> tuple[np.ndarray, np.ndarray]:
    num_runs, num_examples = correct.shape
    run_correct = np.empty(num_runs, np.int64)
    example_correct = np.zeros(num_examples, np.int64)
    for start in range(0, num_runs, chunk_runs):
        block = np.asarray(correct[start : start + chunk_runs])
        run_correct[start : start + chunk_runs] = block.sum(axis=1)
        example_correct += block.sum(axis=0)
    return run_correct, example_correct


def bootstrap_replicates(
    correct,
    weights: np.ndarray,
    chunk_runs: int = 2048,
    run_correct: np.ndarray | None = None,
    example_correct: np.ndarray | None = None,
) -> np.ndarray:
    """σ̂² recomputed on each resample of runs given by `weights` [B, R]; returns [B].

    `run_correct` / `example_correct` (row / column sums of `correct`) are recomputed if
    not given.
    """
    num_runs, num_examples = correct.shape
    if run_correct is None or example_correct is None:
        run_correct, example_correct = _row_and_column_sums(correct, chunk_runs)
    _, test_set_var = weighted_accuracy_moments(run_correct, num_examples, weights)
    # Certain examples (never or always correct) stay certain in every resample: they add
    # nothing to Σ ε*(1-ε*), so only uncertain columns enter the matmul.
    uncertain = np.flatnonzero((example_correct > 0) & (example_correct < num_runs))
    counts = weighted_example_counts(correct, weights, uncertain, chunk_runs)
    independent_var = resampled_independent_variance((counts * (num_runs - counts)).sum(axis=1), num_runs, num_examples)
    return num_examples / (num_examples - 1) * (test_set_var - independent_var)


def weighted_accuracy_moments(run_correct: np.ndarray, num_examples: int, weights: np.ndarray):
    """Mean and ddof=1 variance of accuracy over each resample of runs `weights` [B, R]; two [B] arrays.

    O(B·R), in blocks of resamples so that the float64 copy of the weights stays small.
    """
    num_runs = weights.shape[1]
    accuracy = np.asarray(run_correct, np.float64) / num_examples
    centred = accuracy - accuracy.mean()  # centring first avoids cancellation below
    shift = np.empty(weights.shape[0])
    test_set_var = np.empty(weights.shape[0])
    block = max(1, 2**22 // num_runs)
    for start in range(0, weights.shape[0], block):
        w = weights[start : start + block].astype(np.float64)
        mean = w @ centred / num_runs
        shift[start : start + block] = mean
        test_set_var[start : start + block] = (w @ centred**2 - num_runs * mean**2) / (num_runs - 1)
    return accuracy.mean() + shift, test_set_var


def resampled_independent_variance(count_spread: np.ndarray, num_runs: int, num_examples: int) -> np.ndarray:
    """V̂_ind of each resample from Σ_i T_i (R − T_i), T_i its weighted correct count of example i."""
    spread = count_spread / num_runs**2
    return num_runs / (num_runs - 1) * spread / num_examples**2


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> list | None:
    """Percentile interval [low, high] of bootstrap replicates; NaN marks an undefined replicate.

    Undefined replicates (resamples on which the statistic does not exist) are dropped. When they
    are more than one tail's share, (1 − level)/2, of all replicates, they could have decided
    where an end of the interval lies, so the interval is None.
    """
    replicates = np.asarray(replicates, np.float64)
    defined = replicates[np.isfinite(replicates)]
    tail = 100.0 * (1.0 - level) / 2.0
    if defined.size == 0 or 100.0 * (replicates.size - defined.size) > tail * replicates.size:
        return None
    low, high = np.percentile(defined, [tail, 100.0 - tail])
    return [float(low), float(high)]


def bootstrap_distribution_variance(
    correct,
    *,
    num_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    chunk_runs: int = 2048,
    run_correct: np.ndarray | None = None,
    example_correct: np.ndarray | None = None,
) -> dict:
    """Percentile bootstrap-over-runs interval for the signed σ̂² (conditional on the test set).

    Args:
      correct: [R, n] 0/1 correctness (numpy array or memmap).
      num_resamples: B.
      seed: seed of the resampling.
      level: coverage of the percentile interval.
      run_correct, example_correct: row / column sums of `correct`, if already known.

    Returns:
      {"ci": (low, high), "se": std of the replicates, "replicates": [B] array}.
    """
    weights = bootstrap_weights(correct.shape[0], num_resamples, seed)
    replicates = bootstrap_replicates(correct, weights, chunk_runs, run_correct, example_correct)
    low, high = percentile_interval(replicates, level)
    return {"ci": (low, high), "se": float(replicates.std(ddof=1)), "replicates": replicates}
