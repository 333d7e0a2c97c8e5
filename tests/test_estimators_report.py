"""`report`: keys, JSON, determinism, streaming invariance, and input errors."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from vmaptrain import estimators as est

REQUIRED_KEYS = (
    "num_runs",
    "num_examples",
    "num_classes",
    "accuracy_mean",
    "accuracy_std",
    "accuracy_min",
    "accuracy_max",
    "indep_errors_std",
    "binomial_std",
    "dist_var",
    "dist_std",
    "dist_var_ci95",
    "split_half_corr",
    "top_quarter_gain",
    "disagreement",
    "error_rate",
    "kway_lower_bound_std",
    "pairs_deviating",
    "pairs_deviating_expected",
    "ensemble_accuracy",
    "calibration_ece",
    "ce_std",
    "logit_corr",
    "ensemble_delta",
    "accuracy_mean_ci95",
    "accuracy_std_ci95",
    "indep_errors_std_ci95",
    "split_half_corr_ci95",
    "disagreement_ci95",
    "calibration_ece_ci95",
)


def synthetic_logits(seed=0, num_runs=13, num_examples=90, num_classes=10):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, num_examples)
    difficulty = rng.normal(2.0, 1.5, num_examples)
    logits = rng.normal(size=(num_runs, num_examples, num_classes))
    logits[:, np.arange(num_examples), labels] += difficulty
    return labels, logits.astype(np.float16)


@pytest.fixture(scope="module")
def study():
    return synthetic_logits()


@pytest.fixture(scope="module")
def full_report(study):
    labels, logits = study
    return est.report(labels, logits=logits, bootstrap=200, chunk_runs=6)


def test_report_has_required_keys_and_is_json(full_report):
    for key in REQUIRED_KEYS:
        assert key in full_report, key
    text = json.dumps(full_report, allow_nan=False)
    assert json.loads(text) == full_report
    assert len(full_report["dist_var_ci95"]) == 2
    assert full_report["num_runs"] == 13 and full_report["num_classes"] == 10
    assert [p["m"] for p in full_report["ensemble_accuracy"]] == [1, 2, 4, 8, 13]
    assert 0 < full_report["accuracy_mean"] < 1
    assert full_report["binary_tasks"]["num_tasks"] == 511


def test_report_is_deterministic(study, full_report):
    labels, logits = study
    again = est.report(labels, logits=logits, bootstrap=200, chunk_runs=6)
    assert json.dumps(again) == json.dumps(full_report)


def test_chunking_does_not_change_results(study, full_report):
    labels, logits = study
    other = est.report(labels, logits=logits, bootstrap=200, chunk_runs=1024)
    for key, value in full_report.items():
        if isinstance(value, float):
            assert other[key] == pytest.approx(value, rel=1e-5, abs=1e-9), key
        else:
            assert other[key] == value, key


def test_inputs_as_preds_memmap_and_jax_arrays(study, full_report, tmp_path):
    labels, logits = study
    preds = np.argmax(logits.astype(np.float32), axis=-1).astype(np.uint8)
    from_preds = est.report(labels, preds=preds, num_classes=10, bootstrap=200)
    for key in (
        "accuracy_std",
        "dist_var",
        "dist_var_ci95",
        "pairs_deviating",
        "calibration_ece",
        "disagreement",
        "binary_r2",
        "accuracy_mean_ci95",
        "disagreement_ci95",
        "calibration_ece_ci95",
    ):
        assert from_preds[key] == full_report[key], key
    assert from_preds["ce_std"] is None and from_preds["ensemble_accuracy"][0]["logit"] is None

    np.save(tmp_path / "logits.npy", logits)
    mapped = np.load(tmp_path / "logits.npy", mmap_mode="r", allow_pickle=False)
    assert est.report(labels, logits=mapped, bootstrap=200, chunk_runs=6) == full_report
    assert est.report(jnp.asarray(labels), logits=jnp.asarray(logits), bootstrap=200, chunk_runs=6) == full_report


def test_distribution_variance_forms_agree_on_a_report(study, full_report):
    labels, logits = study
    stats = est.collect_statistics(labels, logits=logits)
    assert full_report["dist_var"] == pytest.approx(est.distribution_variance_covariance_form(stats.correct), rel=1e-10)
    low, high = full_report["dist_var_ci95"]
    assert low < full_report["dist_var"] < high


def test_bootstrap_can_be_skipped(study):
    labels, logits = study
    result = est.report(labels, logits=logits, bootstrap=0)
    assert result["dist_var_ci95"] is None


@pytest.mark.parametrize(
    "case, message",
    [
        (dict(preds=np.zeros((4, 5), np.int32)), "examples per run"),
        (dict(preds=np.zeros((1, 6), np.int32)), "at least 2 runs"),
        (dict(preds=np.zeros((4, 6), np.float32)), "integer dtype"),
        (dict(preds=np.zeros((4, 6), bool)), "integer dtype"),
        (dict(preds=np.zeros(6, np.int32)), "2-D"),
        (dict(preds=np.full((4, 6), 3), num_classes=3), "preds out of range"),
        (dict(preds=np.full((4, 6), -1)), "preds out of range"),
        (dict(logits=np.zeros((4, 6, 3), np.int32)), "logits must be float"),
        (dict(logits=np.zeros((4, 6), np.float32)), "3-D"),
        (
            dict(logits=np.zeros((3, 6, 3), np.float32), preds=np.zeros((4, 6), np.int32)),
            "preds has 4 runs but logits has 3",
        ),
        (dict(logits=np.zeros((4, 6, 3), np.float32), num_classes=4), "num_classes=4"),
        (dict(logits=np.full((4, 6, 2), np.nan, np.float16)), "NaN"),
        (dict(logits=np.full((4, 6, 2), np.inf, np.float32)), "NaN or inf"),
        (dict(), "need logits or preds"),
    ],
)
def test_bad_inputs_raise_one_clear_error(case, message):
    labels = np.array([0, 1, 1, 0, 1, 0])
    with pytest.raises(est.EstimatorInputError, match=message):
        est.report(labels, **case)


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.array([0, 1, 5]), "labels out of range"),
        (np.array([0, -1, 1]), "labels must be >= 0"),
        (np.array([0.0, 1.0, 1.0]), "labels must have an integer dtype"),
        (np.array([[0, 1, 1]]), "labels must be 1-D"),
        (np.array([1]), "at least 2 examples"),
    ],
)
def test_bad_labels(labels, message):
    preds = np.zeros((3, labels.reshape(-1).size), np.int32)
    with pytest.raises(est.EstimatorInputError, match=message):
        est.report(labels, preds=preds, num_classes=3)


def test_error_is_a_value_error():
    assert issubclass(est.EstimatorInputError, ValueError)


def test_nan_in_a_late_chunk_is_caught(study):
    labels, logits = study
    bad = logits.copy()
    bad[11, 3, 2] = np.nan
    with pytest.raises(est.EstimatorInputError, match="runs 6..11"):
        est.report(labels, logits=bad, chunk_runs=6)
