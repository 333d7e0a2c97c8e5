"""`report`: every estimator of the module over one study, as one JSON-serialisable dict.

Two passes: `streaming.collect_statistics` reduces predictions/logits to sufficient
statistics (one pass over chunks of runs), then `summarize` applies the estimators; only
the pair test and the bootstrap go back to the kept [R, n] matrices (the pair test to the 0/1
correctness of its uncertain columns, the bootstrap to the predictions of examples with more
than one predicted class). All values are fractions, not percent; undefined values are None.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from vmaptrain.estimators import streaming
from vmaptrain.estimators.accuracy import accuracy_distribution
from vmaptrain.estimators.binary_tasks import binary_task_analysis, kway_lower_bound_variance
from vmaptrain.estimators.calibration import crossfit_calibration
from vmaptrain.estimators.distribution import (
    distribution_std,
    distribution_variance,
    split_half_covariance,
)
from vmaptrain.estimators.diversity import disagreement_rate, mean_logit_correlation, two_model_ensemble_delta
from vmaptrain.estimators.independence import binomial_excess, independent_errors_variance
from vmaptrain.estimators.intervals import INTERVAL_KEYS, bootstrap_intervals
from vmaptrain.estimators.pairs import pair_independence_test
from vmaptrain.estimators.split_half import split_half_correlation, top_quarter_gain

DEFAULT_BOOTSTRAP = 1000
DEFAULT_CHUNK_RUNS = 1024


@dataclasses.dataclass(frozen=True)
class Analysis:
    """A report together with the statistics it was computed from (used for figures)."""

    report: dict
    statistics: streaming.StudyStatistics


def analyze(
    labels: Any,
    *,
    logits: Any = None,
    preds: Any = None,
    num_classes: int | None = None,
    pair_threshold: float = 0.02,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    chunk_runs: int = DEFAULT_CHUNK_RUNS,
    top_pairs: int = 10,
    calibration_bins: int = 10,
) -> Analysis:
    """Like `report`, but also returns the sufficient statistics."""
    stats = streaming.collect_statistics(
        labels,
        logits=logits,
        preds=preds,
        num_classes=num_classes,
        chunk_runs=chunk_runs,
        keep_predictions=bootstrap > 0,  # only the bootstrap reads them again
    )
    summary = summarize(
        stats,
        pair_threshold=pair_threshold,
        bootstrap=bootstrap,
        seed=seed,
        top_pairs=top_pairs,
        calibration_bins=calibration_bins,
    )
    return Analysis(report=summary, statistics=stats)


def report(
    labels: Any,
    *,
    logits: Any = None,
    preds: Any = None,
    num_classes: int | None = None,
    pair_threshold: float = 0.02,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    chunk_runs: int = DEFAULT_CHUNK_RUNS,
    top_pairs: int = 10,
    calibration_bins: int = 10,
) -> dict:
    """Every estimator of `vmaptrain.estimators` on one study of R runs.

    Args:
      labels: [n] integer labels.
      logits: optional [R, n, k] float16/float32 logits (numpy, memmap or jax array).
      preds: optional [R, n] integer predictions; argmax(logits) if omitted.
      num_classes: k (from logits, else 1 + max label/prediction).
      pair_threshold: t of the pair-independence test (0.02 = 2 points).
      bootstrap: number B of bootstrap resamples of runs behind the `<key>_ci95` intervals
        (0: skip them; the keys are then None).
      seed: seed of the bootstrap resampling; equal seeds give equal intervals.
      chunk_runs: runs per streamed chunk.
      top_pairs: how many most-deviating example pairs to list.
      calibration_bins: equal-width bins of the reliability diagram.

    Returns:
      A JSON-serialisable dict (python floats/ints/lists/None); see docs/statistics.md for the
      meaning of each key. `accuracy_mean`, `accuracy_std`, `indep_errors_std`, `dist_var`,
      `split_half_corr`, `disagreement` and `calibration_ece` each have a `<key>_ci95` pair
      [low, high]: a 95% percentile bootstrap interval over runs with the test examples held
      fixed (docs/statistics.md §13, `intervals.py` for what each one resamples and its cost).

    Raises:
      EstimatorInputError: on malformed inputs.
    """
    return analyze(
        labels,
        logits=logits,
        preds=preds,
        num_classes=num_classes,
        pair_threshold=pair_threshold,
        bootstrap=bootstrap,
        seed=seed,
        chunk_runs=chunk_runs,
        top_pairs=top_pairs,
        calibration_bins=calibration_bins,
    ).report


def summarize(
    stats: streaming.StudyStatistics,
    *,
    pair_threshold: float = 0.02,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    top_pairs: int = 10,
    calibration_bins: int = 10,
) -> dict:
    """Applies every estimator to collected statistics; returns the report dict.

    With `bootstrap` > 0 the `<key>_ci95` intervals come from `intervals.bootstrap_intervals`
    (B = `bootstrap` resamples of runs drawn from `seed`); with 0 they are None.
    """
    num_runs, num_examples, num_classes = stats.num_runs, stats.num_examples, stats.num_classes
    intervals = dict.fromkeys([f"{key}_ci95" for key in (*INTERVAL_KEYS, "dist_var")] + ["dist_var_se"])
    if bootstrap > 0:
        intervals.update(
            bootstrap_intervals(stats, num_resamples=bootstrap, seed=seed, calibration_bins=calibration_bins)
        )
    accuracy = accuracy_distribution(stats.run_correct, num_examples)
    error_rate = 1.0 - accuracy["mean"]
    independent_var = independent_errors_variance(stats.example_correct, num_runs)
    excess = binomial_excess(stats.example_correct, num_runs)
    binomial_var = accuracy["mean"] * (1.0 - accuracy["mean"]) / num_examples
    dist_var = distribution_variance(stats.run_correct, stats.example_correct, num_examples)

    accuracy_even = stats.run_correct_even / stats.num_even_examples
    accuracy_odd = stats.run_correct_odd / (num_examples - stats.num_even_examples)

    out = {
        "num_runs": num_runs,
        "num_examples": num_examples,
        "num_classes": num_classes,
        "accuracy_mean": accuracy["mean"],
        "accuracy_mean_ci95": intervals["accuracy_mean_ci95"],
        "accuracy_std": accuracy["std"],
        "accuracy_std_ci95": intervals["accuracy_std_ci95"],
        "accuracy_std_se": accuracy["std_se"],
        "accuracy_min": accuracy["min"],
        "accuracy_max": accuracy["max"],
        "error_rate": error_rate,
        "test_set_var": accuracy["std"] ** 2,
        "indep_errors_var": independent_var,
        "indep_errors_std": np.sqrt(independent_var),
        "indep_errors_std_ci95": intervals["indep_errors_std_ci95"],
        "binomial_var": binomial_var,
        "binomial_std": np.sqrt(binomial_var),
        "difficulty_var": excess["difficulty_var"],
        "dist_var": dist_var,
        "dist_std": distribution_std(dist_var),
        "dist_var_ci95": intervals["dist_var_ci95"],
        "dist_var_se": intervals["dist_var_se"],
        "dist_var_split": split_half_covariance(accuracy_even, accuracy_odd),
        "split_half_corr": split_half_correlation(accuracy_even, accuracy_odd),
        "split_half_corr_ci95": intervals["split_half_corr_ci95"],
        "top_quarter_gain": top_quarter_gain(accuracy_even, accuracy_odd),
        "disagreement": disagreement_rate(stats.votes, num_runs),
        "disagreement_ci95": intervals["disagreement_ci95"],
        "kway_lower_bound_var": kway_lower_bound_variance(error_rate, num_examples, num_classes),
        "kway_lower_bound_std": np.sqrt(kway_lower_bound_variance(error_rate, num_examples, num_classes)),
        "ensemble_accuracy": stats.ensemble_curve,
    }

    pairs = pair_independence_test(
        stats.correct, threshold=pair_threshold, top_k=top_pairs, example_correct=stats.example_correct
    )
    out.update(
        {
            "pairs_threshold": pair_threshold,
            "pairs_deviating": pairs["deviating"],
            "pairs_deviating_expected": pairs["expected"],
            "pairs_uncertain_examples": pairs["uncertain_examples"],
            "pairs_candidate_examples": pairs["candidate_examples"],
            "pairs_top": pairs["top_pairs"],
        }
    )

    calibration = crossfit_calibration(stats.votes_by_half[0], stats.votes_by_half[1], stats.labels, calibration_bins)
    out.update(
        {
            "calibration_ece": calibration["ece"],
            "calibration_ece_ci95": intervals["calibration_ece_ci95"],
            "calibration_ece_classwise": calibration["ece_classwise"],
            "calibration_bins": calibration["bins"],
        }
    )

    out["binary_tasks"] = None
    out["binary_r2"] = None
    if stats.confusion is not None:
        binary = binary_task_analysis(stats.confusion, num_examples)
        out["binary_r2"] = binary["r2"]
        out["binary_tasks"] = {
            "source": "collapsed k-way predictions",
            "num_tasks": binary["num_tasks"],
            "r2": binary["r2"],
            "r2_identity": binary["r2_identity"],
            "binomial_mse_ratio": binary["binomial_mse_ratio"],
            "error": binary["error"],
            "observed_std": binary["observed_std"],
            "predicted_std": binary["predicted_std"],
        }

    out.update({"ce_mean": None, "ce_std": None, "logit_corr": None, "ensemble_delta": None})
    if stats.logits is not None:
        cross_entropy = stats.logits.run_cross_entropy
        out.update(
            {
                "ce_mean": cross_entropy.mean(),
                "ce_std": cross_entropy.std(ddof=1),
                "logit_corr": mean_logit_correlation(stats.logits.logit_z_sum, stats.logits.logit_z_norm_sq, num_runs),
                "ensemble_delta": two_model_ensemble_delta(
                    stats.logits.pair_ensemble_correct, stats.logits.run_correct, num_examples
                ),
            }
        )
    return to_json(out)


def to_json(value: Any) -> Any:
    """numpy scalars/arrays → python floats/ints/lists, recursively; NaN → None."""
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if np.isfinite(value) else None
    return value
