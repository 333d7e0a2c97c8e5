"""Theorems 3 (binary tasks) and 4 (k-way bound) of Calibrated Chaos §3.4; docs/statistics.md §5-§6.

Theorem 3: for a class-wise calibrated binary algorithm, E_S Var_h(err_S) ≈ err(A)/(2n).
Jordan tests it on the 511 binary tasks of CIFAR-10 (every split of the 10 classes into two
non-empty groups, up to swapping the groups). Here each task is obtained by *collapsing*
the k-way predictions (positive iff the predicted class is in the positive group), not by
retraining, which needs only the per-run confusion matrices:
err_r(S) = (1/n) Σ_{a,b : [a∈S] ≠ [b∈S]} M_r[a, b].

Theorem 4: for a calibrated k-way algorithm, E_S Var_h(err_S) ≥ err(A)/(n·k).
"""

from __future__ import annotations

import numpy as np


def binary_task_partitions(num_classes: int) -> np.ndarray:
    """[T, k] bool membership of the positive group, T = 2^(k-1) - 1.

    The last class is always negative, which picks one of each {S, complement} pair.
    """
    codes = np.arange(1, 2 ** (num_classes - 1))
    bits = (codes[:, None] >> np.arange(num_classes)[None, :]) & 1
    return bits.astype(bool)


def _disagreement_cells(partitions: np.ndarray) -> np.ndarray:
    """[k*k, T] float64: 1 where true class a and predicted class b fall in different groups."""
    differ = partitions[:, :, None] != partitions[:, None, :]
    return differ.reshape(partitions.shape[0], -1).T.astype(np.float64)


def binary_task_errors(confusion: np.ndarray, num_examples: int) -> np.ndarray:
    """[R, T] test error of each run on each collapsed binary task."""
    num_runs, k, _ = confusion.shape
    cells = _disagreement_cells(binary_task_partitions(k))
    return confusion.reshape(num_runs, k * k).astype(np.float64) @ cells / num_examples


def binary_task_analysis(confusion: np.ndarray, num_examples: int, chunk_runs: int = 4096) -> dict:
    """Observed vs Theorem 3-predicted std of test accuracy across the binary tasks.

    Args:
      confusion: [R, k, k] per-run confusion counts (true class, predicted class).
      num_examples: n.

    Returns:
      Dict with per-task arrays `error` (mean over runs), `observed_std` (ddof=1),
      `predicted_std` = √(err/(2n)), `binomial_std` = √(err(1-err)/n), and scalars
      `r2` (squared Pearson correlation of predicted and observed std across tasks, as in
      Jordan's R² = 0.996), `r2_identity` (1 - SS_res/SS_tot of observed about the
      prediction itself, no fitted line) and `binomial_mse_ratio` (mean squared error of the
      binomial prediction over that of Theorem 3).
    """
    num_runs, k, _ = confusion.shape
    cells = _disagreement_cells(binary_task_partitions(k))
    total = confusion.sum(axis=0, dtype=np.int64).reshape(k * k).astype(np.float64)
    error = total @ cells / (num_runs * num_examples)
    squares = np.zeros_like(error)
    for start in range(0, num_runs, chunk_runs):
        block = confusion[start : start + chunk_runs].reshape(-1, k * k).astype(np.float64)
        deviation = block @ cells / num_examples - error
        squares += (deviation * deviation).sum(axis=0)
    observed = np.sqrt(squares / (num_runs - 1))
    predicted = np.sqrt(error / (2.0 * num_examples))
    binomial = np.sqrt(error * (1.0 - error) / num_examples)
    theorem_mse = np.mean((observed - predicted) ** 2)
    return {
        "num_tasks": int(error.size),
        "error": error,
        "observed_std": observed,
        "predicted_std": predicted,
        "binomial_std": binomial,
        "r2": _squared_correlation(predicted, observed),
        "r2_identity": _identity_r2(observed, predicted),
        "binomial_mse_ratio": (float(np.mean((observed - binomial) ** 2) / theorem_mse) if theorem_mse > 0 else None),
    }


def _squared_correlation(x: np.ndarray, y: np.ndarray) -> float | None:
    if x.size < 2 or np.std(x) == 0 or np.std(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1] ** 2)


def _identity_r2(observed: np.ndarray, predicted: np.ndarray) -> float | None:
    total = np.sum((observed - observed.mean()) ** 2)
    if total == 0:
        return None
    return float(1.0 - np.sum((observed - predicted) ** 2) / total)


def kway_lower_bound_variance(error_rate, num_examples: int, num_classes: int):
    """Theorem 4: err(A)/(n·k), a lower bound on E_S Var_h(err_S) under class-wise calibration."""
    return error_rate / (num_examples * num_classes)
