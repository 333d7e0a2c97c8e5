"""Class-wise calibration of the vote ensemble, cross-fitted on two halves of the runs.

Jordan's Definition 2 / Jiang et al.: among examples that a fraction q of runs assign to
class c, a fraction q should truly be class c. Binning on the vote fraction q̂ of the same
runs whose q̂ is reported regresses the bin frequencies toward the mean (q̂ carries binomial
noise), which looks like miscalibration even for a calibrated ensemble. So the runs are
split in two halves A, B: bin on q̂^A, report conf = mean q̂^B, and the same with A and B
swapped; both directions are pooled (docs/statistics.md §7).

The scalar is the class-aggregated calibration error (Jiang et al.'s CACE with B
equal-width bins): Σ_b (|b| / N) · |freq_b − conf_b| over pooled (example, class) cells,
N = 2n (two directions). It bounds |disagreement − error| up to binning.
"""

from __future__ import annotations

import numpy as np


def _bin_sums(bin_on: np.ndarray, confidence: np.ndarray, target: np.ndarray, num_bins: int):
    """Per (bin, class) counts and sums of confidence and target; each [num_bins, k]."""
    num_classes = bin_on.shape[1]
    bins = np.minimum((bin_on * num_bins).astype(np.int64), num_bins - 1)
    flat = (bins * num_classes + np.arange(num_classes)[None, :]).ravel()
    size = num_bins * num_classes

    def total(weights):
        return np.bincount(flat, weights=weights.ravel(), minlength=size).reshape(num_bins, -1)

    return total(np.ones_like(confidence)), total(confidence), total(target)


def crossfit_calibration(votes_a: np.ndarray, votes_b: np.ndarray, labels: np.ndarray, num_bins: int = 10) -> dict:
    """Cross-fitted reliability data and calibration errors of the vote ensemble.

    Args:
      votes_a, votes_b: [n, k] vote counts of two disjoint halves of the runs.
      labels: [n] labels.
      num_bins: equal-width bins of the vote fraction on [0, 1].

    Returns:
      `ece` (class-aggregated, pooled over classes), `ece_classwise` (per-class errors
      averaged over classes), and `bins`: a list of {low, high, count, confidence,
      frequency} for the reliability plot (count = pooled cells in the bin, both directions).
    """
    votes_a = np.asarray(votes_a, np.float64)
    votes_b = np.asarray(votes_b, np.float64)
    q_a = votes_a / votes_a[0].sum()
    q_b = votes_b / votes_b[0].sum()
    num_examples, num_classes = q_a.shape
    target = (np.asarray(labels)[:, None] == np.arange(num_classes)[None, :]).astype(np.float64)
    count = np.zeros((num_bins, num_classes))
    confidence = np.zeros_like(count)
    frequency = np.zeros_like(count)
    for bin_on, other in ((q_a, q_b), (q_b, q_a)):
        c, s, t = _bin_sums(bin_on, other, target, num_bins)
        count += c
        confidence += s
        frequency += t
    cells = 2.0 * num_examples
    pooled_gap = np.abs(frequency.sum(axis=1) - confidence.sum(axis=1))
    classwise_gap = np.abs(frequency - confidence)
    bins = []
    for b in range(num_bins):
        n_b = count[b].sum()
        bins.append(
            {
                "low": b / num_bins,
                "high": (b + 1) / num_bins,
                "count": int(n_b),
                "confidence": float(confidence[b].sum() / n_b) if n_b else None,
                "frequency": float(frequency[b].sum() / n_b) if n_b else None,
            }
        )
    return {
        "ece": float(pooled_gap.sum() / cells),
        "ece_classwise": float(classwise_gap.sum() / cells / num_classes),
        "bins": bins,
    }
