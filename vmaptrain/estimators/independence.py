"""The independent-errors hypothesis (Calibrated Chaos §3.2, Definition 1) and the binomial assumption
(Fig. 14); docs/statistics.md §2.

Under independent errors, test error is a sum of independent Bernoulli(ε_i) over examples:
a Poisson-binomial variable divided by n. Its exact pmf is computed
here by a balanced product tree of the generating polynomials Π_i (1 - ε_i + ε_i z), each
level one batched FFT convolution, in numpy float64 (JAX float32 FFTs would lose the tails).
Only uncertain examples (0 < ε̂ < 1) are random; always-wrong examples shift the support.
"""

from __future__ import annotations

import numpy as np


def example_error_rates(example_correct: np.ndarray, num_runs: int) -> np.ndarray:
    """ε̂_i = fraction of runs wrong on example i."""
    return 1.0 - np.asarray(example_correct, np.float64) / num_runs


def independent_errors_variance(example_correct: np.ndarray, num_runs: int) -> np.ndarray:
    """Predicted variance of test accuracy under independent errors, unbiased at finite R.

    V̂_ind = (1/n²) Σ_i v̂_i with v̂_i = R/(R-1) · ε̂_i(1 - ε̂_i), the ddof=1 variance of the
    0/1 column of example i. The plug-in ε̂(1-ε̂) is biased low by the factor (1 - 1/R).

    Args:
      example_correct: [..., n] number of runs (out of num_runs) correct on each example.
      num_runs: R.
    """
    eps = example_error_rates(example_correct, num_runs)
    num_examples = eps.shape[-1]
    per_example = num_runs / (num_runs - 1) * eps * (1.0 - eps)
    return per_example.sum(axis=-1) / num_examples**2


def poisson_binomial_pmf(probs: np.ndarray) -> np.ndarray:
    """Exact pmf [m+1] of the number of successes of independent Bernoulli(probs[i])."""
    probs = np.asarray(probs, np.float64).ravel()
    if probs.size == 0:
        return np.ones(1)
    size = 1 << int(np.ceil(np.log2(probs.size))) if probs.size > 1 else 1
    level = np.zeros((size, 2))
    level[:, 0] = 1.0  # padding factors are the constant polynomial 1
    level[: probs.size, 0] = 1.0 - probs
    level[: probs.size, 1] = probs
    while level.shape[0] > 1:
        width = 2 * level.shape[1] - 1
        nfft = 1 << int(np.ceil(np.log2(width)))
        spectrum = np.fft.rfft(level[0::2], nfft) * np.fft.rfft(level[1::2], nfft)
        level = np.fft.irfft(spectrum, nfft)[:, :width]
    pmf = np.clip(level[0, : probs.size + 1], 0.0, None)  # FFT round-off can dip below 0
    return pmf / pmf.sum()


def independent_errors_distribution(example_correct: np.ndarray, num_runs: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact distribution of test accuracy under independent errors with ε_i = ε̂_i.

    Like Jordan's simulation (Fig. 3) this plugs in ε̂_i; its variance is therefore the
    plug-in (1/n²)Σ ε̂(1-ε̂), smaller than V̂_ind by (R-1)/R.

    Returns:
      (accuracy values, probabilities), both [n_uncertain + 1], accuracy ascending.
    """
    example_correct = np.asarray(example_correct)
    num_examples = example_correct.shape[0]
    eps = example_error_rates(example_correct, num_runs)
    uncertain = (example_correct > 0) & (example_correct < num_runs)
    always_wrong = int(np.sum(example_correct == 0))
    pmf_errors = poisson_binomial_pmf(eps[uncertain])
    errors = always_wrong + np.arange(pmf_errors.size)
    accuracy = (num_examples - errors) / num_examples
    return accuracy[::-1].copy(), pmf_errors[::-1].copy()


def sample_independent_errors_accuracy(
    example_correct: np.ndarray, num_runs: int, num_samples: int, seed: int = 0
) -> np.ndarray:
    """Draws test accuracies from the independent-errors distribution (exact, no Bernoulli loop)."""
    accuracy, pmf = independent_errors_distribution(example_correct, num_runs)
    rng = np.random.default_rng(seed)
    return accuracy[rng.choice(pmf.size, size=num_samples, p=pmf)]


def binomial_variance(accuracy_mean, num_examples: int):
    """Variance of test accuracy if every example had the same error rate: p(1-p)/n."""
    return accuracy_mean * (1.0 - accuracy_mean) / num_examples


def binomial_excess(example_correct: np.ndarray, num_runs: int) -> dict:
    """The identity Var_binom(ε̄) − Var_ind = Var_i(ε_i)/n, with plug-in ε̂ throughout.

    The binomial assumption overstates the variance exactly by the spread of per-example
    difficulty. Returns the three terms; `binomial_var - independent_var_plugin` equals
    `difficulty_spread_over_n` up to round-off.
    """
    eps = example_error_rates(example_correct, num_runs)
    num_examples = eps.shape[-1]
    mean_eps = eps.mean(axis=-1)
    return {
        "binomial_var": binomial_variance(mean_eps, num_examples),
        "independent_var_plugin": (eps * (1.0 - eps)).sum(axis=-1) / num_examples**2,
        "difficulty_var": eps.var(axis=-1),
        "difficulty_spread_over_n": eps.var(axis=-1) / num_examples,
    }
