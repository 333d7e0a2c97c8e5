"""Monte Carlo checks on synthetic studies whose true quantities are known.

Studies are simulated in numpy with all replicates at once ([replicates, R, n] arrays) and
the estimators are applied to the batched sufficient statistics.
"""

import numpy as np
import pytest

from vmaptrain import estimators as est


def two_type_studies(rng, replicates, num_runs, num_examples, shift):
    """Replicate studies with a known distribution-wise variance.

    Test examples are drawn i.i.d.: base error ε_x ∈ {0.1, 0.4}, loading u_x = +1 (prob 0.7)
    or −1. A run has a type s = ±1 (prob ½ each); it errs on x independently with probability
    ε_x + shift · s · u_x. So err(h) = E ε + shift · s · E u and
    Var_h(err(h)) = shift² (E u)² = 0.16 shift², while the marginal per-example error rate is ε_x.

    Returns (correct [replicates, R, n] bool, ε_x [replicates, n], true variance).
    """
    base = np.where(rng.random((replicates, 1, num_examples)) < 0.5, 0.1, 0.4)
    loading = np.where(rng.random((replicates, 1, num_examples)) < 0.7, 1.0, -1.0)
    run_type = np.where(rng.random((replicates, num_runs, 1)) < 0.5, 1.0, -1.0)
    error_prob = base + shift * run_type * loading
    correct = rng.random((replicates, num_runs, num_examples)) >= error_prob
    return correct, base[:, 0, :], 0.16 * shift**2


def assert_unbiased(estimates, truth):
    mean = estimates.mean()
    standard_error = estimates.std(ddof=1) / np.sqrt(estimates.size)
    assert abs(mean - truth) < 2 * standard_error, (mean, truth, standard_error)


@pytest.mark.parametrize("shift", [0.08, 0.0])
def test_distribution_variance_estimators_are_unbiased(shift):
    rng = np.random.default_rng(10 if shift else 11)
    num_runs, num_examples = 10, 40
    correct, _, truth = two_type_studies(rng, 2000, num_runs, num_examples, shift)
    run_correct, example_correct = correct.sum(-1), correct.sum(-2)

    theorem2 = est.distribution_variance(run_correct, example_correct, num_examples)
    assert theorem2.shape == (2000,)
    assert_unbiased(theorem2, truth)

    split = est.split_half_covariance(correct[..., ::2].mean(-1), correct[..., 1::2].mean(-1))
    assert_unbiased(split, truth)


def test_monte_carlo_detects_the_plug_in_bias():
    # The same check has the power to reject the plug-in ε̂(1-ε̂) (no R/(R-1)), whose bias is
    # n/(n-1) · Var_ind / R (docs/statistics.md §3): the unbiasedness test is not vacuous.
    rng = np.random.default_rng(10)
    num_runs, num_examples = 10, 40
    correct, _, truth = two_type_studies(rng, 2000, num_runs, num_examples, 0.08)
    accuracy = correct.mean(-1)
    eps = 1 - correct.mean(-2)
    plug_in = (
        num_examples / (num_examples - 1) * (accuracy.var(-1, ddof=1) - (eps * (1 - eps)).sum(-1) / num_examples**2)
    )
    standard_error = plug_in.std(ddof=1) / np.sqrt(plug_in.size)
    assert plug_in.mean() - truth > 3 * standard_error


def test_independent_errors_variance_is_unbiased():
    rng = np.random.default_rng(12)
    correct, eps, _ = two_type_studies(rng, 2000, 8, 30, 0.08)
    predicted = est.independent_errors_variance(correct.sum(-2), 8)
    truth = (eps * (1 - eps)).sum(-1) / 30**2  # given each replicate's test set
    assert_unbiased(predicted - truth, 0.0)


def test_sampler_matches_bernoulli_simulation():
    rng = np.random.default_rng(13)
    example_correct = rng.integers(0, 51, 300)
    example_correct[:100] = 50  # always right
    eps = 1 - example_correct / 50
    samples = est.sample_independent_errors_accuracy(example_correct, 50, 100_000, seed=4)
    bernoulli = 1 - (rng.random((100_000, 300)) < eps).mean(-1)
    accuracy, pmf = est.independent_errors_distribution(example_correct, 50)
    exact_var = (eps * (1 - eps)).sum() / 300**2
    assert np.sum(accuracy * pmf) == pytest.approx(1 - eps.mean(), abs=1e-12)
    assert np.sum(accuracy**2 * pmf) - np.sum(accuracy * pmf) ** 2 == pytest.approx(exact_var)
    grid = np.rint(accuracy * 300)  # compare on the integer count grid, not float accuracies
    cdf = np.cumsum(pmf)
    for draws in (samples, bernoulli):
        empirical = np.searchsorted(np.sort(np.rint(draws * 300)), grid, side="right") / draws.size
        assert np.max(np.abs(empirical - cdf)) < 0.01  # KS distance, 1% critical ≈ 0.005


def test_pair_null_expectation_matches_simulation():
    rng = np.random.default_rng(14)
    replicates, num_runs, num_examples, threshold = 100, 80, 60, 0.06
    observed, expected = [], []
    for _ in range(replicates):
        p = rng.uniform(0.2, 0.8, num_examples)
        correct = rng.random((num_runs, num_examples)) < p  # independent examples
        result = est.pair_independence_test(correct, threshold=threshold)
        observed.append(result["deviating"])
        expected.append(result["expected"])
    difference = np.array(observed) - np.array(expected)
    standard_error = difference.std(ddof=1) / np.sqrt(replicates)
    assert np.mean(observed) > 20  # the regime where the null count matters
    assert abs(difference.mean()) < 3 * standard_error, (np.mean(observed), np.mean(expected))
    assert abs(difference.mean()) < 0.06 * np.mean(expected)  # a normal approximation: +10%


def calibrated_study(rng, num_runs, num_examples, num_classes, calibrated=True):
    """Each example has class probabilities q(x); runs predict ~ q(x) independently.

    With labels ~ q(x) the ensemble is class-wise calibrated; with labels = argmax q it is not.
    """
    q = rng.dirichlet(np.full(num_classes, 0.5), num_examples)
    cumulative = np.cumsum(q, axis=1)
    if calibrated:
        labels = (rng.random((num_examples, 1)) > cumulative).sum(1)
    else:
        labels = q.argmax(1)
    preds = (rng.random((num_runs, num_examples, 1)) > cumulative[None]).sum(-1)
    return labels.astype(np.int32), np.minimum(preds, num_classes - 1).astype(np.int32)


def test_calibration_disagreement_and_theorem3_on_calibrated_study():
    rng = np.random.default_rng(15)
    labels, preds = calibrated_study(rng, 400, 2000, 4)
    report = est.report(labels, preds=preds, num_classes=4, bootstrap=0)
    # GDE: disagreement equals error in expectation for a calibrated ensemble.
    assert abs(report["disagreement"] - report["error_rate"]) < 0.02
    assert report["calibration_ece"] < 0.05  # finite-n noise alone gives ≈ 0.03 here
    # Errors are independent across examples here: Var_h(err(h)) = 0, and Theorem 3 gives
    # observed variance ≈ err/(2n) on every collapsed binary task.
    tasks = report["binary_tasks"]
    ratio = np.array(tasks["observed_std"]) ** 2 / np.array(tasks["predicted_std"]) ** 2
    assert tasks["num_tasks"] == 7
    assert np.mean(ratio) == pytest.approx(1.0, abs=0.15)
    assert abs(report["dist_var"]) < 3 * report["test_set_var"] * np.sqrt(2 / 399)
    # Theorem 4: the k-way variance is at least err/(nk).
    assert report["test_set_var"] > report["kway_lower_bound_var"]

    labels, preds = calibrated_study(rng, 400, 2000, 4, calibrated=False)
    miscalibrated = est.report(labels, preds=preds, num_classes=4, bootstrap=0)
    assert miscalibrated["calibration_ece"] > 0.1
