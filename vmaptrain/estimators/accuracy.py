"""The distribution of test-set accuracy over runs (Calibrated Chaos §2, Fig. 1; docs/statistics.md §1)."""

from __future__ import annotations

import numpy as np


def accuracy_distribution(run_correct: np.ndarray, num_examples: int) -> dict:
    """Mean, std (ddof=1), min, max and the standard error of the std over runs.

    Args:
      run_correct: [..., R] number of correct test examples per run (leading axes batch
        independent studies).
      num_examples: n, the test-set size.

    Returns:
      Dict of float64 arrays (scalars for 1-D input): `mean`, `std`, `min`, `max` and
      `std_se` = std / sqrt(2(R-1)), the normal-approximation standard error of the std.
    """
    accuracy = np.asarray(run_correct, np.float64) / num_examples
    num_runs = accuracy.shape[-1]
    std = accuracy.std(axis=-1, ddof=1)
    return {
        "mean": accuracy.mean(axis=-1),
        "std": std,
        "min": accuracy.min(axis=-1),
        "max": accuracy.max(axis=-1),
        "std_se": std / np.sqrt(2.0 * (num_runs - 1)),
    }
