"""Disagreement (Jiang et al. GDE) and Summers & Dinneen's diversity metrics.

All of them are computed from O(n·k) or O(R) statistics gathered in one streaming pass
(Calibrated Chaos App. B.5 / Jiang et al. Thm 4.1 for disagreement; Summers & Dinneen 2021 Table 1 for
the rest; docs/statistics.md §8, §11), never from an R×R table of run pairs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def disagreement_rate(votes: np.ndarray, num_runs: int) -> float:
    """Mean disagreement over all R(R-1) ordered pairs of distinct runs.

    D̂ = (1/n) Σ_i [1 − Σ_c m_ic(m_ic − 1) / (R(R−1))], from vote counts m [n, k]. Equal in
    expectation to the test error when the ensemble is class-wise calibrated (GDE).
    """
    votes = np.asarray(votes, np.float64)
    agree = (votes * (votes - 1.0)).sum(axis=1) / (num_runs * (num_runs - 1.0))
    return float(np.mean(1.0 - agree))


def mean_logit_correlation(z_sum: np.ndarray, z_norm_sq: float, num_runs: int) -> float:
    """Mean Pearson correlation of flattened logits over pairs of distinct runs.

    With z_r the standardised (centred, unit-norm) flattened logits of run r, the pair
    correlation is z_r·z_s and Σ_{r≠s} z_r·z_s = ‖Σ_r z_r‖² − Σ_r ‖z_r‖².
    """
    z_sum = np.asarray(z_sum, np.float64)
    return float((z_sum @ z_sum - z_norm_sq) / (num_runs * (num_runs - 1.0)))


def two_model_ensemble_delta(pair_correct: np.ndarray, run_correct: np.ndarray, num_examples: int) -> float | None:
    """Mean accuracy gain of a 2-model logit ensemble over its members.

    Summers & Dinneen average over all pairs; here the pairs are the disjoint (2j, 2j+1),
    an unbiased subsample when runs are exchangeable, so the cost stays O(R·n·k).
    """
    pair_correct = np.asarray(pair_correct, np.float64)
    if pair_correct.size == 0:
        return None
    members = np.asarray(run_correct[: 2 * pair_correct.size], np.float64).reshape(-1, 2)
    return float(np.mean(pair_correct - members.mean(axis=1)) / num_examples)


# Summers & Dinneen's "variability reduction": mean relative reduction of these five
# metrics, with the correlation entering as 1 - corr (Summers & Dinneen 2021 §5; docs/statistics.md §12:
# this reproduces the paper's published 61% for its best row).
VARIABILITY_METRICS = ("accuracy_std", "ce_std", "disagreement", "logit_corr", "ensemble_delta")


def variability_reduction(baseline: Mapping, treatment: Mapping) -> dict:
    """Relative reduction of each diversity metric from `baseline` to `treatment` reports.

    Returns {metric: (base − new)/base, ..., "mean": mean over the five}, using 1 − corr for
    `logit_corr`.
    """
    reductions = {}
    for name in VARIABILITY_METRICS:
        base, new = baseline[name], treatment[name]
        if name == "logit_corr":
            base, new = 1.0 - base, 1.0 - new
        reductions[name] = float((base - new) / base)
    reductions["mean"] = float(np.mean([reductions[name] for name in VARIABILITY_METRICS]))
    return reductions
