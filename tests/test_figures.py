"""Every figure binary at --scale=smoke: exit 0, and its report's shapes and invariants."""

import json

import numpy as np
import pytest

import helpers
from vmaptrain import replicate
from vmaptrain.replicate import poke

SMOKE = replicate.SCALES["smoke"]


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    root = tmp_path_factory.mktemp("figures")
    shared = f"--studies_dir={root / 'studies'}"  # the figures share their identical studies
    calls = [
        (f"experiments.{name}", [f"--workdir={root / name}", "--scale=smoke", shared]) for name in replicate.FIGURES
    ]
    calls += [
        ("experiments.poke", [f"--workdir={root / 'bad'}", "--scale=huge"]),
        ("experiments.lr_sweep", [f"--workdir={root / 'studies' / 'epochs_0001'}", "--scale=smoke"]),
        ("experiments.lr_sweep", [f"--workdir={root / 'poke'}", "--scale=smoke"]),
        ("experiments.poke", [f"--workdir={root / 'poke'}", "--scale=smoke", "--num_seeds=8"]),
    ]
    results = helpers.run_mains(calls)
    reports = {}
    for name, (code, out, err) in zip(replicate.FIGURES, results):
        assert code == 0, err[-2000:]
        assert f"{name} (smoke scale): report.json" in out
        with open(root / name / "report.json") as handle:
            reports[name] = json.load(handle)
        for png in reports[name]["figures"]:
            assert (root / name / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return root, reports, results[len(replicate.FIGURES) :]


def check_accuracy_row(row, runs):
    assert row["runs"] == runs and len(row["accuracies"]) == runs
    acc = np.asarray(row["accuracies"])
    assert np.all((acc >= 0) & (acc <= 1))
    assert row["accuracy_min"] <= row["accuracy_mean"] <= row["accuracy_max"]
    np.testing.assert_allclose(row["accuracy_mean"], acc.mean(), atol=1e-6)
    np.testing.assert_allclose(row["accuracy_std"], acc.std(ddof=1), atol=1e-6)


def test_duration_sweep(figures):
    report = figures[1]["duration_sweep"]
    assert [r["epochs"] for r in report["durations"]] == list(SMOKE.epochs)
    for row in report["durations"]:
        check_accuracy_row(row, SMOKE.num_seeds)
        assert row["accuracy_range"] == pytest.approx(row["accuracy_max"] - row["accuracy_min"])
    untrained, trained = report["durations"]
    assert trained["accuracy_mean"] > untrained["accuracy_mean"] + 0.2  # one epoch learns digits


def test_lucky_seeds_and_distribution_variance(figures):
    lucky, dist = figures[1]["lucky_seeds"], figures[1]["distribution_variance"]
    for row in lucky["durations"]:
        assert row["split_half_corr"] is None or -1 <= row["split_half_corr"] <= 1
    for row in dist["durations"]:
        assert row["dist_std"] == pytest.approx(np.sqrt(max(row["dist_var"], 0)))
        low, high = row["dist_var_ci95"]
        assert low <= high
    # Both figures read the same shared sweep studies.
    assert [r["accuracy_std"] for r in lucky["durations"]] == [r["test_set_std"] for r in dist["durations"]]


def test_independent_errors(figures):
    report = figures[1]["independent_errors"]
    dist = report["distribution"]
    probability = np.asarray(dist["probability"])
    assert probability.sum() == pytest.approx(1.0) and np.all(probability >= 0)
    assert np.all(np.diff(dist["accuracy"]) > 0)
    # The plug-in independent-errors variance (1/n²)Σ ε_i(1−ε_i) equals the binomial one less the
    # spread of example difficulty, so it never exceeds it; the estimator reported is that plug-in
    # times R/(R−1) (unbiased at finite R), which may (docs/statistics.md).
    plug_in = np.sqrt((SMOKE.num_seeds - 1) / SMOKE.num_seeds)
    for row in report["durations"]:
        assert row["indep_errors_std"] >= 0 and row["binomial_std"] >= plug_in * row["indep_errors_std"] - 1e-12


def test_binary_tasks(figures):
    tasks = figures[1]["binary_tasks"]["tasks"]
    assert tasks["num_tasks"] == 511
    assert len(tasks["observed_std"]) == len(tasks["predicted_std"]) == 511
    assert tasks["r2"] <= 1


def test_lr_sweep(figures):
    report = figures[1]["lr_sweep"]
    assert [r["lr"] for r in report["lrs"]] == list(SMOKE.lrs)
    assert all(r["runs"] == SMOKE.num_seeds for r in report["lrs"])
    assert report["best_lr"] in SMOKE.lrs


def test_seed_isolation(figures):
    rows = figures[1]["seed_isolation"]["studies"]
    assert [r["vary"] for r in rows] == ["all", "init", "order", "aug"]
    assert rows[0]["variance_ratio_to_all"] == pytest.approx(1.0)
    # The smoke recipe has no augmentation, so varying only the aug stream trains identical runs.
    assert rows[3]["accuracy_std"] == 0 and rows[3]["disagreement"] == 0


def test_poke(figures):
    report = figures[1]["poke"]
    assert report["twins"] == poke.num_twins(SMOKE)
    assert [r["poke_step"] for r in report["by_poke_step"]] == list(SMOKE.poke_steps)
    for value in [r["disagreement"] for r in report["by_poke_step"]] + [report["reseed_disagreement"]]:
        assert 0 <= value <= 1
    assert report["reseed_disagreement"] > 0
    assert report["ulp_factor"] == float(np.float32(1) + np.finfo(np.float32).eps)


def test_bad_scale_and_foreign_workdir_are_refused(figures):
    root, _, (bad_scale, study_workdir, other_figure, other_scale) = figures
    code, _, err = bad_scale
    assert code == 2 and err.strip() == "error: unknown scale 'huge'; choose from smoke, cpu, paper"
    assert not (root / "bad").exists()
    for (code, _, err), pattern in [
        (study_workdir, "is a study workdir, not a figure's"),
        (other_figure, "holds another figure or scale (differs in figure)"),
        (other_scale, "holds another figure or scale (differs in scale.num_seeds)"),
    ]:
        assert code == 2 and len(err.strip().splitlines()) == 1 and pattern in err, err


def test_augmentation(figures):
    report = figures[1]["augmentation"]
    plain, reduced = report["arms"]
    assert plain["fraction"] == 1.0 and reduced["fraction"] == 0.5
    assert report["augmentation"] == {"flip": "none", "translate": 1, "cutout": 0}
    check_accuracy_row(plain, SMOKE.num_seeds)
    check_accuracy_row(reduced, SMOKE.num_seeds)
    expected = (plain["accuracy_std"] / reduced["accuracy_std"]) ** 2
    assert report["variance_ratio_no_aug_over_matched"] == pytest.approx(expected)
    subset = np.load(figures[0] / "studies" / "train_subset_0.500.npz")
    assert len(subset["y_train"]) == round(0.5 * 1433) and len(subset["y_test"]) == 364


def test_mitigations(figures):
    from vmaptrain.estimators.diversity import VARIABILITY_METRICS
    from vmaptrain.replicate import mitigations
    from vmaptrain.study import load_result

    root, reports = figures[0], figures[1]
    report = reports["mitigations"]
    assert report["epochs"] == 2 and report["cycles"] == 2
    assert report["tta_views"] == {"crop9": "crop:1:1"}  # digits smoke: no translate → pad 1, no flips
    rows = report["methods"]
    assert set(rows) == {"single", "crop9", "snapshot_ensemble"}
    for label, row in rows.items():
        assert 0 <= row["accuracy_mean"] <= 1 and row["accuracy_std"] >= 0 and -1 <= row["logit_corr"] <= 1
        if label == "single":
            continue
        reduction = row["variability_reduction"]
        for metric in VARIABILITY_METRICS:
            base, new = rows["single"][metric], row[metric]
            if metric == "logit_corr":
                base, new = 1 - base, 1 - new
            assert reduction[metric] == pytest.approx((base - new) / base)
        assert reduction["mean"] == pytest.approx(np.mean([reduction[m] for m in VARIABILITY_METRICS]))
    # The ensemble row is the estimators on the mean of the stored end-of-cycle snapshots.
    study = load_result(str(root / "mitigations" / "snapshot_0002_x2"))
    assert sorted(study.snapshots) == [1, 2]
    expected = mitigations.numbers(study.labels, np.mean([study.snapshots[1], study.snapshots[2]], axis=0))
    for key, value in expected.items():
        assert rows["snapshot_ensemble"][key] == pytest.approx(value)
    assert (root / "mitigations" / "single_0002" / "weights" / "runs_000000-000004").is_dir()
