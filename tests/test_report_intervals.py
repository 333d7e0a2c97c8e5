"""The `<key>_ci95` bootstrap-over-runs intervals of `report` (vmaptrain/estimators/intervals.py)."""

import itertools
import json

import numpy as np
import pytest
from scipy.special import ndtri

from vmaptrain import estimators as est
from vmaptrain.estimators import intervals
from vmaptrain.estimators.distribution import bootstrap_weights, percentile_interval, weighted_accuracy_moments
from vmaptrain.estimators.files import analyze_files

KEYS = (*intervals.INTERVAL_KEYS, "dist_var")


def synthetic_predictions(seed, num_runs, num_examples, num_classes=4, run_effect=0.05):
    """Runs that share a per-run quality (so accuracies vary more than binomially) and err on
    hard examples towards one of a few wrong classes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, num_examples)
    p_correct = np.where(rng.random(num_examples) < 0.6, 1.0, rng.beta(3.0, 1.0, num_examples))
    quality = rng.standard_normal((num_runs, 1))
    noise = rng.standard_normal((num_runs, num_examples))
    correct = np.sqrt(run_effect) * quality + np.sqrt(1 - run_effect) * noise < ndtri(p_correct)
    wrong_class = (labels + 1 + rng.integers(0, 2, (num_runs, num_examples))) % num_classes
    return labels, np.where(correct, labels, wrong_class)


@pytest.fixture(scope="module")
def study():
    return synthetic_predictions(0, num_runs=24, num_examples=150)


@pytest.fixture(scope="module")
def with_intervals(study):
    labels, preds = study
    return est.report(labels, preds=preds, num_classes=4, bootstrap=300, seed=3)


def test_every_interval_is_present_and_contains_its_estimate(with_intervals):
    for key in KEYS:
        low, high = with_intervals[f"{key}_ci95"]
        assert low <= with_intervals[key] <= high, key
        assert low < high, key
    assert json.loads(json.dumps(with_intervals, allow_nan=False)) == with_intervals


def test_identical_runs_give_zero_width_intervals():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    preds = np.tile([0, 1, 2, 1, 1, 0, 0, 2], (10, 1))  # every run makes the same 3 mistakes
    result = est.report(labels, preds=preds, num_classes=3, bootstrap=200)
    assert result["accuracy_mean"] == 5 / 8
    assert result["accuracy_mean_ci95"] == [5 / 8, 5 / 8]
    assert result["accuracy_std_ci95"] == [0.0, 0.0]
    assert result["indep_errors_std_ci95"] == [0.0, 0.0]
    assert result["disagreement_ci95"] == [0.0, 0.0]
    assert result["calibration_ece_ci95"] == [result["calibration_ece"]] * 2
    # Both halves have zero variance over runs: the correlation is undefined, and so is its interval.
    assert result["split_half_corr"] is None and result["split_half_corr_ci95"] is None


def test_same_seed_same_intervals_other_seed_other_intervals(study, with_intervals):
    labels, preds = study
    again = est.report(labels, preds=preds, num_classes=4, bootstrap=300, seed=3)
    assert json.dumps(again) == json.dumps(with_intervals)
    other = est.report(labels, preds=preds, num_classes=4, bootstrap=300, seed=4)
    for key in KEYS:
        assert other[f"{key}_ci95"] != with_intervals[f"{key}_ci95"], key


def test_bootstrap_zero_gives_no_intervals(study):
    labels, preds = study
    result = est.report(labels, preds=preds, num_classes=4, bootstrap=0)
    for key in KEYS:
        assert key in result and result[f"{key}_ci95"] is None, key
    assert result["dist_var_se"] is None


def test_dist_var_interval_is_the_one_it_always_was(study, with_intervals):
    labels, preds = study
    stats = est.collect_statistics(labels, preds=preds, num_classes=4)
    before = est.bootstrap_distribution_variance(stats.correct, num_resamples=300, seed=3)
    assert with_intervals["dist_var_ci95"] == pytest.approx(list(before["ci"]), rel=1e-12, abs=1e-18)
    assert with_intervals["dist_var_se"] == pytest.approx(before["se"], rel=1e-12)


def test_replicates_with_unit_weights_are_the_estimates(study):
    labels, preds = study
    stats = est.collect_statistics(labels, preds=preds, num_classes=4)
    point = est.summarize(stats, bootstrap=0)
    replicates = intervals.resampled_statistics(stats, np.ones((1, stats.num_runs), np.uint8))
    for key in KEYS:
        assert replicates[key][0] == pytest.approx(point[key], rel=1e-12, abs=1e-15), key


def _pairs_of_different_runs(draws):
    return [(a, b) for a, b in itertools.permutations(range(draws.size), 2) if draws[a] != draws[b]]


def _votes(preds, num_classes):
    return np.stack([(preds == c).sum(axis=0) for c in range(num_classes)], axis=1)


@pytest.mark.parametrize("block_resamples", [None, 4])
def test_replicates_equal_recomputation_on_resampled_runs(block_resamples):
    # The resample's statistics worked out from explicitly copied runs; pair statistics average over
    # pairs of draws that are different runs (docs/statistics.md §13).
    num_runs, num_examples, num_classes = 9, 40, 4
    labels, preds = synthetic_predictions(1, num_runs, num_examples, num_classes)
    labels[:2] = 0
    preds[:, 0] = [1, 2, 3, 1, 2, 3, 1, 2, 3]  # always wrong, with three distinct wrong classes
    preds[:, 1] = 2  # always wrong, always the same class
    preds[:, 2] = [labels[2], 1, 2, 3, 1, 2, 3, 1, 2]  # once right, then three distinct wrong classes
    stats = est.collect_statistics(labels, preds=preds, num_classes=num_classes)
    rng = np.random.default_rng(2)
    draws = rng.integers(0, num_runs, size=(12, num_runs))
    weights = np.stack([np.bincount(d, minlength=num_runs) for d in draws]).astype(np.uint8)
    got = intervals.resampled_statistics(stats, weights, block_resamples=block_resamples)
    for b, drawn in enumerate(draws):
        correct, resampled = stats.correct[drawn], preds[drawn]
        accuracy = correct.mean(axis=1)
        pairs = _pairs_of_different_runs(drawn)
        even = drawn % 2 == 0
        expected = {
            "accuracy_mean": accuracy.mean(),
            "accuracy_std": np.sqrt(np.mean([(accuracy[p] - accuracy[q]) ** 2 / 2 for p, q in pairs])),
            "indep_errors_std": np.sqrt(np.mean([(correct[p] != correct[q]).sum() / 2 for p, q in pairs]))
            / num_examples,
            "split_half_corr": est.split_half_correlation(correct[:, ::2].mean(1), correct[:, 1::2].mean(1)),
            "disagreement": np.mean([np.mean(resampled[p] != resampled[q]) for p, q in pairs]),
            "calibration_ece": est.crossfit_calibration(
                _votes(resampled[even], num_classes), _votes(resampled[~even], num_classes), labels
            )["ece"],
            "dist_var": est.distribution_variance(correct.sum(1), correct.sum(0), num_examples),
        }
        for key, value in expected.items():
            assert got[key][b] == pytest.approx(value, rel=1e-9, abs=1e-14), (key, b)


def test_undefined_replicates():
    stats = est.collect_statistics(np.array([0, 1, 1]), preds=np.array([[0, 1, 0], [0, 0, 1]]), num_classes=2)
    # Both draws of run 0: no pair of different runs and no odd-half run.
    got = intervals.resampled_statistics(stats, np.array([[2, 0], [1, 1]], np.uint8))
    for key in ("accuracy_std", "indep_errors_std", "split_half_corr", "disagreement", "calibration_ece"):
        assert np.isnan(got[key][0]) and np.isfinite(got[key][1]), key
    assert percentile_interval(np.array([np.nan] + [1.0] * 99)) == [1.0, 1.0]
    assert percentile_interval(np.array([np.nan] * 3 + [1.0] * 97)) is None  # more than one tail's share


def test_without_predictions_only_the_vote_intervals_are_missing(study, with_intervals):
    labels, preds = study
    stats = est.collect_statistics(labels, preds=preds, num_classes=4, keep_predictions=False)
    assert stats.predictions is None
    result = est.summarize(stats, bootstrap=300, seed=3)
    assert result["disagreement_ci95"] is None and result["calibration_ece_ci95"] is None
    for key in ("accuracy_mean", "accuracy_std", "indep_errors_std", "split_half_corr", "dist_var"):
        assert result[f"{key}_ci95"] == pytest.approx(with_intervals[f"{key}_ci95"], rel=1e-12), key


# Coverage of the accuracy_mean interval over synthetic studies with a known mean. Each study is
# R runs on one fixed test set; example i is right with probability p_i in every run, with a shared
# per-run quality making runs differ, so the expected accuracy over runs is exactly mean(p_i).
COVERAGE_STUDIES = 200
COVERAGE_RUNS = 30


def _accuracy_mean_intervals(shrink=1.0):
    rng = np.random.default_rng(7)
    num_examples = 200
    p_correct = rng.beta(8.0, 2.0, num_examples)
    threshold = ndtri(p_correct)
    covered = []
    for study_index in range(COVERAGE_STUDIES):
        quality = rng.standard_normal((COVERAGE_RUNS, 1))
        latent = np.sqrt(0.02) * quality + np.sqrt(0.98) * rng.standard_normal((COVERAGE_RUNS, num_examples))
        run_correct = (latent < threshold).sum(axis=1)
        # The code path of `report`'s accuracy_mean_ci95.
        weights = bootstrap_weights(COVERAGE_RUNS, 1000, study_index)
        replicates, _ = weighted_accuracy_moments(run_correct, num_examples, weights)
        replicates = replicates.mean() + shrink * (replicates - replicates.mean())
        low, high = percentile_interval(replicates)
        covered.append(low <= p_correct.mean() <= high)
    return np.mean(covered)


def _consistent_with_95_percent(coverage):
    # 3.5 binomial sds at 200 studies (±0.054); the percentile bootstrap of a mean of 30 runs
    # covers a little under 95%, well inside this.
    return abs(coverage - 0.95) <= 3.5 * np.sqrt(0.95 * 0.05 / COVERAGE_STUDIES)


def test_accuracy_mean_interval_covers_the_known_mean_about_95_percent():
    assert _consistent_with_95_percent(_accuracy_mean_intervals())


def test_coverage_check_rejects_an_interval_half_as_wide():
    assert not _consistent_with_95_percent(_accuracy_mean_intervals(shrink=0.5))


def test_analyze_writes_the_intervals_to_report_json(study, with_intervals, tmp_path):
    labels, preds = study
    np.save(tmp_path / "labels.npy", labels)
    np.save(tmp_path / "preds.npy", preds.astype(np.uint8))
    analyze_files(
        str(tmp_path / "labels.npy"),
        str(tmp_path / "out"),
        preds_path=str(tmp_path / "preds.npy"),
        num_classes=4,
        bootstrap=300,
        seed=3,
    )
    with open(tmp_path / "out" / "report.json") as f:
        written = json.load(f)
    for key in KEYS:
        assert written[f"{key}_ci95"] == with_intervals[f"{key}_ci95"], key
