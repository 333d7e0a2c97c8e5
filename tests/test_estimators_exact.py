"""Each estimator against values worked out by hand (or by brute force) on tiny studies."""

import itertools

import numpy as np
import pytest

from vmaptrain import estimators as est

# A study of R = 3 runs on n = 4 examples with k = 3 classes. Correctness:
#   run 0: 1 1 0 1    run 1: 1 0 0 1    run 2: 1 1 1 0
LABELS = np.array([0, 1, 2, 0])
PREDS = np.array([[0, 1, 0, 0], [0, 2, 1, 0], [0, 1, 2, 1]])


@pytest.fixture(scope="module")
def tiny():
    return est.collect_statistics(LABELS, preds=PREDS, num_classes=3)


@pytest.fixture(scope="module")
def tiny_report():
    return est.report(LABELS, preds=PREDS, num_classes=3, bootstrap=50, pair_threshold=0.2)


def test_sufficient_statistics(tiny):
    np.testing.assert_array_equal(tiny.run_correct, [3, 2, 3])
    np.testing.assert_array_equal(tiny.example_correct, [3, 2, 1, 2])
    np.testing.assert_array_equal(tiny.run_correct_even, [1, 1, 2])
    np.testing.assert_array_equal(tiny.votes, [[3, 0, 0], [0, 2, 1], [1, 1, 1], [2, 1, 0]])
    np.testing.assert_array_equal(tiny.votes_by_half[1], [[1, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]])


def test_accuracy_distribution(tiny_report):
    # accuracies 3/4, 1/2, 3/4: mean 2/3, ddof=1 variance (1/144 + 4/144 + 1/144)/2 = 1/48.
    assert tiny_report["accuracy_mean"] == pytest.approx(2 / 3)
    assert tiny_report["accuracy_std"] == pytest.approx(np.sqrt(1 / 48))
    assert tiny_report["accuracy_std_se"] == pytest.approx(np.sqrt(1 / 48) / 2)
    assert tiny_report["accuracy_min"] == 0.5
    assert tiny_report["accuracy_max"] == 0.75
    assert tiny_report["error_rate"] == pytest.approx(1 / 3)


def test_independent_errors_and_binomial(tiny_report, tiny):
    # ε̂ = 0, 1/3, 2/3, 1/3; v̂ = 3/2 · ε̂(1-ε̂) = 0, 1/3, 1/3, 1/3; V̂_ind = 1/16.
    assert tiny_report["indep_errors_var"] == pytest.approx(1 / 16)
    assert tiny_report["binomial_var"] == pytest.approx((2 / 3) * (1 / 3) / 4)
    excess = est.binomial_excess(tiny.example_correct, 3)
    assert excess["binomial_var"] == pytest.approx(1 / 18)
    assert excess["independent_var_plugin"] == pytest.approx(1 / 24)
    assert excess["difficulty_var"] == pytest.approx(1 / 18)
    assert excess["binomial_var"] - excess["independent_var_plugin"] == pytest.approx(
        excess["difficulty_spread_over_n"]
    )


def test_distribution_variance_is_signed(tiny_report):
    # σ̂² = n/(n-1) (s² − V̂_ind) = 4/3 (1/48 − 1/16) = −1/18: negative, std clipped to 0.
    assert tiny_report["dist_var"] == pytest.approx(-1 / 18)
    assert tiny_report["dist_std"] == 0.0
    low, high = tiny_report["dist_var_ci95"]
    assert low <= high


def test_split_half(tiny_report):
    # even-example accuracies 1/2, 1/2, 1; odd 1, 1/2, 1/2: covariance −1/24, variances 1/12.
    assert tiny_report["dist_var_split"] == pytest.approx(-1 / 24)
    assert tiny_report["split_half_corr"] == pytest.approx(-0.5)
    # Q_.75 of (1/2, 1/2, 1) is 3/4, so only run 2 is selected: 1/2 − 2/3.
    assert tiny_report["top_quarter_gain"] == pytest.approx(-1 / 6)


def test_disagreement_matches_all_pairs(tiny_report):
    pairs = [np.mean(PREDS[a] != PREDS[b]) for a, b in itertools.combinations(range(3), 2)]
    assert np.mean(pairs) == pytest.approx(7 / 12)
    assert tiny_report["disagreement"] == pytest.approx(7 / 12)


def test_kway_lower_bound(tiny_report):
    assert tiny_report["kway_lower_bound_var"] == pytest.approx((1 / 3) / (4 * 3))
    assert tiny_report["kway_lower_bound_std"] == pytest.approx(np.sqrt(1 / 36))


def test_ensemble_curve(tiny_report):
    # m=2: example 1 ties {1, 2} -> lowest index 1 (right); example 2 ties {0, 1} -> 0 (wrong).
    assert tiny_report["ensemble_accuracy"] == [
        {"m": 1, "vote": 0.75, "logit": None},
        {"m": 2, "vote": 0.75, "logit": None},
        {"m": 3, "vote": 0.75, "logit": None},
    ]
    assert est.ensemble_sizes(10) == [1, 2, 4, 8, 10]
    assert est.ensemble_sizes(8) == [1, 2, 4, 8]


def test_pair_test_by_hand(tiny):
    # Candidates (p in (0.2, 0.8)): examples 1, 2, 3 with p = 2/3, 1/3, 2/3.
    # Joint correctness: (1,2) 1/3 vs 2/9; (1,3) 1/3 vs 4/9; (2,3) 0 vs 2/9.
    result = est.pair_independence_test(tiny.correct, threshold=0.2, top_k=3)
    assert result["candidate_examples"] == 3
    assert result["uncertain_examples"] == 3
    assert result["deviating"] == 1
    top = result["top_pairs"][0]
    assert (top["i"], top["j"]) == (2, 3)
    assert top["joint"] == 0.0
    assert top["product"] == pytest.approx(2 / 9)
    assert top["deviation"] == pytest.approx(-2 / 9)
    assert {(p["i"], p["j"]) for p in result["top_pairs"]} == {(1, 2), (1, 3), (2, 3)}
    assert est.pair_independence_test(tiny.correct, threshold=0.1)["deviating"] == 3


def test_hypergeometric_tails_by_brute_force_and_scipy(monkeypatch):
    from scipy.stats import hypergeom

    from vmaptrain.estimators.pairs import expected_deviating_pairs, hypergeometric_tails

    # R = 4, c_i = 2, c_j = 2: X ∈ {0, 1, 2} with masses 1/6, 4/6, 1/6 (count the 6 draws).
    np.testing.assert_allclose(hypergeometric_tails(4, [2], [2], [2], [0]), [2 / 6])
    np.testing.assert_allclose(hypergeometric_tails(4, [2], [2], [3], [-1]), [0.0])
    rng = np.random.default_rng(0)
    for runs in (3, 8, 64, 1000):
        c_i, c_j = rng.integers(0, runs + 1, 300), rng.integers(0, runs + 1, 300)
        upper = rng.integers(0, runs + 2, 300)
        lower = upper - 1 - rng.integers(0, runs, 300)
        expected = hypergeom.sf(upper - 1, runs, c_i, c_j) + hypergeom.cdf(lower, runs, c_i, c_j)
        np.testing.assert_allclose(hypergeometric_tails(runs, c_i, c_j, upper, lower), expected, rtol=1e-9, atol=1e-15)
    # Both paths of the expectation (numpy for few cells, scipy beyond) agree.
    counts = rng.integers(1, 600, 400)
    numpy_path = expected_deviating_pairs(counts, 600, 0.02)
    from vmaptrain.estimators import pairs

    monkeypatch.setattr(pairs, "_NUMPY_TAIL_CELLS", 0)
    assert expected_deviating_pairs(counts, 600, 0.02) == pytest.approx(numpy_path, rel=1e-9)


def test_binary_tasks_against_collapsing():
    partitions = est.binary_task_partitions(3)
    np.testing.assert_array_equal(partitions, [[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    assert est.binary_task_partitions(10).shape == (511, 10)
    stats = est.collect_statistics(LABELS, preds=PREDS, num_classes=3)
    errors = est.binary_task_errors(stats.confusion, 4)
    for t, positive in enumerate(partitions):
        expected = np.mean(positive[PREDS] != positive[LABELS][None, :], axis=1)
        np.testing.assert_allclose(errors[:, t], expected)
    analysis = est.binary_task_analysis(stats.confusion, 4)
    np.testing.assert_allclose(analysis["error"], errors.mean(axis=0))
    np.testing.assert_allclose(analysis["observed_std"], errors.std(axis=0, ddof=1))
    np.testing.assert_allclose(analysis["predicted_std"], np.sqrt(errors.mean(axis=0) / 8))


def test_calibration_against_brute_force(tiny):
    votes_a, votes_b = tiny.votes_by_half
    result = est.crossfit_calibration(votes_a, votes_b, LABELS, num_bins=4)
    q_a, q_b = votes_a / 2, votes_b / 1  # runs 0, 2 vs run 1
    cells = []  # (bin, confidence, target) for every example, class and direction
    for bin_on, other in ((q_a, q_b), (q_b, q_a)):
        for i, c in itertools.product(range(4), range(3)):
            cells.append((min(int(bin_on[i, c] * 4), 3), other[i, c], float(LABELS[i] == c)))
    ece = 0.0
    for b in range(4):
        members = [(conf, target) for bin_, conf, target in cells if bin_ == b]
        assert result["bins"][b]["count"] == len(members)
        if members:
            confidence, frequency = np.mean(members, axis=0)
            assert result["bins"][b]["confidence"] == pytest.approx(confidence)
            assert result["bins"][b]["frequency"] == pytest.approx(frequency)
            ece += len(members) / 8 * abs(frequency - confidence)
    assert result["ece"] == pytest.approx(ece)


def test_theorem2_equals_covariance_form_exactly():
    # The Theorem 2 form and the mean off-diagonal covariance agree for every sample.
    rng = np.random.default_rng(1)
    for _ in range(5):
        correct = rng.random((7, 9)) < rng.random(9)
        direct = est.distribution_variance(correct.sum(1), correct.sum(0), 9)
        assert direct == pytest.approx(est.distribution_variance_covariance_form(correct), rel=1e-12, abs=1e-15)


def test_bootstrap_replicates_equal_recomputation_on_resampled_runs():
    rng = np.random.default_rng(2)
    correct = rng.random((12, 15)) < rng.random(15)
    draws = rng.integers(0, 12, size=(6, 12))
    weights = np.stack([np.bincount(d, minlength=12) for d in draws]).astype(np.uint8)
    replicates = est.bootstrap_replicates(correct, weights, chunk_runs=5)
    for b in range(6):
        resampled = correct[draws[b]]
        expected = est.distribution_variance(resampled.sum(1), resampled.sum(0), 15)
        assert replicates[b] == pytest.approx(expected, rel=1e-9, abs=1e-14)


def test_logit_statistics_against_brute_force():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 6)
    logits = rng.normal(size=(5, 6, 4)).astype(np.float32)
    result = est.report(labels, logits=logits, bootstrap=0, chunk_runs=2)
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    cross_entropy = -np.take_along_axis(log_probs, labels[None, :, None], -1)[..., 0].mean(1)
    assert result["ce_mean"] == pytest.approx(cross_entropy.mean(), rel=1e-5)
    assert result["ce_std"] == pytest.approx(cross_entropy.std(ddof=1), rel=1e-4)
    flat = logits.reshape(5, -1)
    correlations = [np.corrcoef(flat[a], flat[b])[0, 1] for a, b in itertools.combinations(range(5), 2)]
    assert result["logit_corr"] == pytest.approx(np.mean(correlations), rel=1e-5)
    accuracy = (logits.argmax(-1) == labels).mean(1)
    deltas = [
        ((logits[a] + logits[a + 1]).argmax(-1) == labels).mean() - (accuracy[a] + accuracy[a + 1]) / 2 for a in (0, 2)
    ]
    assert result["ensemble_delta"] == pytest.approx(np.mean(deltas))
    logit_sums = np.cumsum(logits, axis=0)
    for point in result["ensemble_accuracy"]:
        m = point["m"]
        assert point["logit"] == pytest.approx((logit_sums[m - 1].argmax(-1) == labels).mean())


def test_poisson_binomial_against_enumeration():
    probs = np.array([0.1, 0.5, 0.7, 0.95, 0.3])
    expected = np.zeros(6)
    for outcome in itertools.product([0, 1], repeat=5):
        weight = np.prod([p if o else 1 - p for p, o in zip(probs, outcome)])
        expected[sum(outcome)] += weight
    np.testing.assert_allclose(est.poisson_binomial_pmf(probs), expected, atol=1e-15)
    # Equal probabilities give the binomial distribution.
    from scipy.stats import binom

    np.testing.assert_allclose(
        est.poisson_binomial_pmf(np.full(37, 0.3)), binom.pmf(np.arange(38), 37, 0.3), atol=1e-14
    )


def test_independent_errors_distribution_support():
    # 2 always-wrong examples, 1 always-right, 2 uncertain with ε = 1/4 and 3/4 (R = 4).
    example_correct = np.array([0, 0, 4, 3, 1])
    accuracy, pmf = est.independent_errors_distribution(example_correct, 4)
    np.testing.assert_allclose(accuracy, [1 / 5, 2 / 5, 3 / 5])
    # errors among uncertain: 0 w.p. 3/4·1/4, 2 w.p. 1/4·3/4, 1 otherwise.
    np.testing.assert_allclose(pmf, [3 / 16, 10 / 16, 3 / 16])
    mean, var = np.sum(accuracy * pmf), np.sum(accuracy**2 * pmf) - np.sum(accuracy * pmf) ** 2
    assert var == pytest.approx((2 * 3 / 16) / 25)
    assert mean == pytest.approx(2 / 5)


def test_variability_reduction():
    base = {
        "accuracy_std": 0.26,
        "ce_std": 0.0072,
        "disagreement": 0.107,
        "logit_corr": 0.871,
        "ensemble_delta": 0.0182,
    }
    new = {"accuracy_std": 0.16, "ce_std": 0.0033, "disagreement": 0.046, "logit_corr": 0.972, "ensemble_delta": 0.0038}
    # Summers & Dinneen's best row, published as a 61% reduction (Summers & Dinneen 2021 §5;
    # docs/statistics.md §12).
    assert est.variability_reduction(base, new)["mean"] == pytest.approx(0.61, abs=0.005)
