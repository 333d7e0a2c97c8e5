"""The file driver and the `experiments/analyze.py` binary."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vmaptrain import estimators as est
from vmaptrain.estimators.files import analyze_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "experiments", "analyze.py")
FIGURES = ("accuracy_histogram.png", "split_half.png", "calibration.png", "ensemble.png", "binary_tasks.png")


@pytest.fixture(scope="module")
def study_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("study")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 120)
    logits = rng.normal(size=(21, 120, 10))
    logits[:, np.arange(120), labels] += rng.normal(2.0, 1.0, 120)
    np.save(directory / "labels.npy", labels)
    np.save(directory / "logits.npy", logits.astype(np.float16))
    np.save(directory / "preds.npy", logits.argmax(-1).astype(np.uint8))
    bad = logits.astype(np.float32)
    bad[20, 0, 0] = np.nan
    np.save(directory / "bad_logits.npy", bad)
    return directory


def test_analyze_files_writes_report_and_figures(study_files, tmp_path):
    out = tmp_path / "out"
    report = analyze_files(
        str(study_files / "labels.npy"),
        str(out),
        logits_path=str(study_files / "logits.npy"),
        bootstrap=100,
        chunk_runs=8,
    )
    with open(out / "report.json") as f:
        assert json.load(f) == report
    for name in FIGURES:
        assert (out / name).stat().st_size > 1000, name
    assert sorted(os.listdir(tmp_path)) == ["out"]  # the staging directory is gone
    # Same numbers as the in-memory API.
    labels = np.load(study_files / "labels.npy")
    logits = np.load(study_files / "logits.npy")
    assert est.report(labels, logits=logits, bootstrap=100, chunk_runs=8) == report


def test_analyze_files_with_preds_only(study_files, tmp_path):
    report = analyze_files(
        str(study_files / "labels.npy"),
        str(tmp_path / "out"),
        preds_path=str(study_files / "preds.npy"),
        num_classes=10,
        bootstrap=0,
    )
    assert report["ce_std"] is None
    assert report["num_runs"] == 21


def test_failure_writes_nothing(study_files, tmp_path):
    with pytest.raises(est.EstimatorInputError, match="NaN"):
        analyze_files(
            str(study_files / "labels.npy"),
            str(tmp_path / "out"),
            logits_path=str(study_files / "bad_logits.npy"),
            chunk_runs=8,
        )
    with pytest.raises(est.EstimatorInputError, match="cannot read logits"):
        analyze_files(
            str(study_files / "labels.npy"), str(tmp_path / "out"), logits_path=str(study_files / "missing.npy")
        )
    assert os.listdir(tmp_path) == []


def _run_binary(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, BINARY, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )


def test_binary_success(study_files, tmp_path):
    out = tmp_path / "out"
    result = _run_binary(
        f"--logits={study_files / 'logits.npy'}",
        f"--labels={study_files / 'labels.npy'}",
        f"--out={out}",
        "--bootstrap=50",
    )
    assert result.returncode == 0, result.stderr
    assert set(FIGURES) | {"report.json"} == set(os.listdir(out))


def test_binary_bad_input_prints_one_error_line(study_files, tmp_path):
    out = tmp_path / "out"
    result = _run_binary(
        f"--logits={study_files / 'bad_logits.npy'}", f"--labels={study_files / 'labels.npy'}", f"--out={out}"
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: logits contain NaN"), result.stderr
    assert not out.exists()


def test_binary_unreadable_file_exits_2(study_files, tmp_path):
    out = tmp_path / "out"
    result = _run_binary(
        f"--logits={study_files / 'missing.npy'}", f"--labels={study_files / 'labels.npy'}", f"--out={out}"
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot read logits file"), result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (("--out=unused",), "error: flag --labels"),
        (("--labels=labels.npy", "--out=unused", "--bootstrap=many"), "error: flag --bootstrap=many"),
        (("--labels=labels.npy", "--out=unused", "extra"), "error: unexpected positional arguments: extra"),
    ],
)
def test_binary_bad_flags_exit_2(args, message):
    result = _run_binary(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
