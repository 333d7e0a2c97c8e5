"""Do lucky seeds generalise? Split-half statistics (Calibrated Chaos §3.1, Fig. 2; docs/statistics.md §4).

The test set is split into even- and odd-indexed examples. Each run gets an accuracy on
each half; the first half plays the validation split, the second the held-out split.
"""

from __future__ import annotations

import numpy as np


def split_half_correlation(accuracy_a: np.ndarray, accuracy_b: np.ndarray) -> float | None:
    """Pearson correlation over runs; None when either half has zero variance."""
    a = np.asarray(accuracy_a, np.float64) - np.mean(accuracy_a)
    b = np.asarray(accuracy_b, np.float64) - np.mean(accuracy_b)
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    if denominator == 0:
        return None
    return float((a * b).sum() / denominator)


def top_quarter_gain(accuracy_a: np.ndarray, accuracy_b: np.ndarray, quantile: float = 0.75) -> float:
    """G = mean{a²_r : a¹_r ≥ Q_q(a¹)} − mean_r a²_r.

    How much better than average, on the held-out half, are the runs that are in the top
    (1 - quantile) on the first half. Q uses numpy's default (linear) quantile; with tied
    accuracies the selected set can exceed a quarter of the runs.
    """
    a = np.asarray(accuracy_a, np.float64)
    b = np.asarray(accuracy_b, np.float64)
    selected = a >= np.quantile(a, quantile)
    return float(b[selected].mean() - b.mean())
