"""Comparing finished studies: the API on workdirs, the binary, and its refusals (docs/comparison.md)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from conftest import snapshot
from tests import helpers
from vmaptrain import SeedStudy, comparison
from vmaptrain.config import StudyError


@pytest.fixture(scope="module")
def studies(tmp_path_factory, small_config):
    """A digits study at one lr and one whose runs sweep lr (three arms): one compiled program."""
    root = tmp_path_factory.mktemp("compare")
    config = dict(small_config, epochs=1, num_seeds=6)
    paths = {"lr005": str(root / "lr005"), "sweep": str(root / "sweep")}
    SeedStudy(**config).run(paths["lr005"], progress=False)
    SeedStudy(**config | {"lr": (0.02, 0.02, 0.05, 0.05, 0.2, 0.2)}).run(paths["sweep"], progress=False)
    return paths


def test_two_studies_compared_and_written(studies, tmp_path):
    out = str(tmp_path / "cmp")
    result = comparison.compare_studies(studies["lr005"], studies["sweep"], out=out)
    a = json.load(open(os.path.join(studies["lr005"], "summary.json")))
    b = json.load(open(os.path.join(studies["sweep"], "summary.json")))
    assert result["delta"] == pytest.approx(a["accuracy_mean"] - b["accuracy_mean"], abs=1e-9)
    assert result["arms"]["A"]["runs"] == 6
    with open(os.path.join(out, "compare.json")) as handle:
        assert json.load(handle)["verdict"] == result["verdict"]
    with open(os.path.join(out, "compare.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_diverged_runs_are_left_out_and_growth_after_a_comparison_is_flagged(studies, tmp_path):
    diverged = _altered_copy(studies["sweep"], str(tmp_path / "diverged"), lambda w: _mark_diverged(w, 0))
    out = str(tmp_path / "cmp")
    result = comparison.compare_studies(studies["lr005"], diverged, out=out)
    assert result["studies"]["B"]["runs"] == 5 and result["studies"]["B"]["diverged_runs_left_out"] == [0]
    assert result["arms"]["B"]["runs"] == 5
    assert "grown_after_comparison" not in result
    # The same comparison again after B "grew" (the earlier compare.json says B had fewer runs).
    previous = json.load(open(os.path.join(out, "compare.json")))
    previous["studies"]["B"]["runs"] = 3
    json.dump(previous, open(os.path.join(out, "compare.json"), "w"))
    again = comparison.compare_studies(studies["lr005"], diverged, out=out)
    assert again["grown_after_comparison"] == ["B"] and "inflates false positives" in again["verdict"]


def _keep_examples(workdir: str, count: int) -> None:
    for name in ("labels.npy", "logits.npy"):
        path = os.path.join(workdir, name)
        np.save(path, np.load(path)[..., :count, :] if name == "logits.npy" else np.load(path)[:count])


def _mark_diverged(workdir: str, run: int) -> None:
    path = os.path.join(workdir, "runs.json")
    runs = json.load(open(path))
    runs[run]["status"] = "diverged"
    json.dump(runs, open(path, "w"))


def test_arms_of_one_study_by_a_per_run_field(studies, tmp_path):
    result = comparison.compare_study_arms(studies["sweep"], "lr", out=str(tmp_path / "arms"))
    assert sorted(result["arms"]) == ["lr=0.02", "lr=0.05", "lr=0.2"]
    assert result["runs_per_arm"] == {"lr=0.02": [0, 1], "lr=0.05": [2, 3], "lr=0.2": [4, 5]}
    assert len(result["comparisons"]) == 2
    assert all("p_value_distribution_holm" in row for row in result["comparisons"])
    with pytest.raises(StudyError, match="hyperparameters.lr"):
        comparison.compare_study_arms(studies["sweep"], "dropout")
    with pytest.raises(StudyError, match="one arm"):
        comparison.compare_study_arms(studies["sweep"], "wd")


def _altered_copy(source: str, destination: str, change) -> str:
    shutil.copytree(source, destination)
    change(destination)
    return destination


def _edit_config(workdir: str, **fields) -> None:
    path = os.path.join(workdir, "config.json")
    saved = json.load(open(path))
    saved["config"].update(fields)
    json.dump(saved, open(path, "w"))


def test_binary_compares_and_refuses_what_is_not_one_test_set(studies, tmp_path):
    good_out = str(tmp_path / "good")
    other = str(tmp_path / "other")
    shuffled = _altered_copy(
        studies["sweep"],
        other + "_labels",
        lambda w: np.save(os.path.join(w, "labels.npy"), np.roll(np.load(os.path.join(w, "labels.npy")), 1)),
    )
    renamed = _altered_copy(studies["sweep"], other + "_dataset", lambda w: _edit_config(w, dataset="idx:/elsewhere"))
    fewer_classes = _altered_copy(
        studies["sweep"],
        other + "_classes",
        lambda w: np.save(os.path.join(w, "logits.npy"), np.load(os.path.join(w, "logits.npy"))[..., :9]),
    )
    nan_logits = _altered_copy(
        studies["sweep"],
        other + "_nan",
        lambda w: np.save(os.path.join(w, "logits.npy"), np.full_like(np.load(os.path.join(w, "logits.npy")), np.nan)),
    )
    smaller = _altered_copy(studies["sweep"], other + "_smaller", lambda w: _keep_examples(w, 300))
    labels = os.path.join(studies["lr005"], "labels.npy")
    one_run = str(tmp_path / "one_run.npy")
    np.save(one_run, np.load(os.path.join(studies["lr005"], "logits.npy"))[:1])
    compare = "experiments.compare"
    calls = [
        (compare, [f"--a={studies['lr005']}", f"--b={studies['sweep']}", f"--out={tmp_path / 'binary'}"]),
        (compare, [f"--a={studies['lr005']}", f"--b={shuffled}", f"--out={good_out}"]),
        (compare, [f"--a={studies['lr005']}", f"--b={renamed}", f"--out={good_out}"]),
        (compare, [f"--a={studies['lr005']}", f"--b={smaller}", f"--out={good_out}"]),
        (compare, [f"--a={studies['lr005']}", f"--b={fewer_classes}", f"--out={good_out}"]),
        (compare, [f"--a={studies['lr005']}", f"--b={nan_logits}", f"--out={good_out}"]),
        (compare, [f"--a={studies['lr005']}", f"--b={tmp_path / 'missing'}", f"--out={good_out}"]),
        (compare, [f"--study={studies['sweep']}", "--arms_by=dropout", f"--out={good_out}"]),
        (compare, [f"--a={studies['lr005']}", f"--out={good_out}"]),
        (compare, [f"--a_logits={one_run}", f"--b_logits={one_run}", f"--labels={labels}", f"--out={good_out}"]),
        (compare, [f"--a={studies['lr005']}", f"--b={studies['sweep']}", "--alpha=2", f"--out={good_out}"]),
        (
            compare,
            [
                f"--a_logits={one_run}",
                f"--b_logits={one_run}",
                f"--labels={labels}",
                "--single_run",
                f"--out={tmp_path / 'single'}",
            ],
        ),
        (compare, [f"--study={studies['sweep']}", "--arms_by=lr", f"--out={tmp_path / 'arms'}"]),
    ]
    comparison.compare_studies(studies["lr005"], studies["sweep"], out=good_out)
    written = snapshot(good_out)
    results = helpers.run_mains(calls)
    assert results[0][0] == 0, results[0][2]
    assert "Q2" in results[0][1] and "compare.json" in results[0][1]
    assert snapshot(str(tmp_path / "binary")) == written  # the binary writes what the API writes
    results = results[1:]
    expected = [
        "different test labels",
        "different datasets",
        "test sets of",
        "classes",
        "NaN",
        "no finished study",
        "no such per-run field",
        "exactly one of",
        "single_run",
        "alpha",
    ]
    for (code, _, err), message in zip(results, expected):
        assert code == 2 and err.startswith("error: ") and message in err, err
        assert len(err.strip().splitlines()) == 1, err
    assert snapshot(good_out) == written  # a refused comparison replaced nothing
    single, arms = results[-2], results[-1]
    assert single[0] == 0 and "predicted" in single[1], single[2]
    assert arms[0] == 0 and "best arm" in arms[1], arms[2]
