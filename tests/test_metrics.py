"""Per-run metrics of a study: metrics.jsonl, TensorBoard runs, the loss-curve PNG; and the README
study's logits, bitwise those of the tree before the engine refactor."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time

import numpy as np
import pytest

import helpers
from vmaptrain import machine, metrics, store
from vmaptrain.study import SeedStudy

# sha256 of the README study's stored logits (logits.npy: float16 [32, 364, 10]; the float32
# logits of `SeedStudy(strategy="unrolled", init="flax").run()` hash to 433e8586…), every other
# field at its default, recorded before the engine refactor, when "unrolled" was the default
# strategy and flax's init small_cnn's only one; per
# (CPU model, jax version): XLA:CPU compiles for the host's features, so another CPU may round
# differently.
README_LOGITS_SHA256 = {
    ("AMD EPYC", "0.10.2"): "e0d10fc43ff143af0779307dd465e8800708a6fa6df6ff6e9afe27fecadd3e65",
}


@pytest.fixture(scope="module")
def readme_study(tmp_path_factory):
    """The README study (32 runs × 20 epochs) as the tree before the engine refactor ran it
    ("unrolled", flax's init convention, then small_cnn's only one), trained in groups of 4: a
    run's logits do not depend on how many runs share its program, so this is bitwise that study."""
    workdir = str(tmp_path_factory.mktemp("readme") / "digits")
    result = SeedStudy(strategy="unrolled", group_size=4, init="flax").run(workdir, progress=False)
    return workdir, result


def test_readme_study_logits_are_bitwise_those_before_the_refactor(readme_study):
    import jax

    workdir, _ = readme_study
    key = (machine.cpu_model(), jax.__version__)
    if key not in README_LOGITS_SHA256:
        pytest.skip(f"no reference hash recorded for {key} (recorded: {sorted(README_LOGITS_SHA256)})")
    logits = np.load(os.path.join(workdir, "logits.npy"))
    assert logits.shape == (32, 364, 10) and logits.dtype == np.float16
    assert hashlib.sha256(logits.tobytes()).hexdigest() == README_LOGITS_SHA256[key]


def test_metrics_jsonl_has_every_epoch_of_every_run_once(readme_study):
    workdir, result = readme_study
    lines = metrics.read_lines(os.path.join(workdir, "metrics.jsonl"))
    assert len(lines) == 8 * 20  # one line per epoch per group of 4
    seen = {}
    for line in lines:
        assert set(line) >= {"group", "runs", "epoch", "step", "train_loss", "lr", "time"}
        assert line["runs"] == list(range(*line["group"]))
        for j, run in enumerate(line["runs"]):
            assert (run, line["epoch"]) not in seen
            seen[run, line["epoch"]] = (line["train_loss"][j], line["lr"][j], line.get("test_accuracy"))
    assert set(seen) == {(r, e) for r in range(32) for e in range(1, 21)}
    # The loss falls, the linear schedule decays, and the last epoch carries the test accuracy.
    for run in range(32):
        assert seen[run, 20][0] < seen[run, 1][0]
        assert seen[run, 20][1] < seen[run, 1][1]
    for line in lines:
        assert ("test_accuracy" in line) == (line["epoch"] == 20)
    for row in result.runs:
        group = next(g for g in lines if g["epoch"] == 20 and row["index"] in g["runs"])
        j = group["runs"].index(row["index"])
        assert group["test_accuracy"][j] == pytest.approx(row["test_accuracy"])
        assert group["train_loss"][j] == pytest.approx(row["final_train_loss"])
    with open(os.path.join(workdir, "loss_curves.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def _tensorboard_runs(logdir: str) -> dict:
    """{run name: {tag: [(step, value), …]}} as TensorBoard's own event reader loads them."""
    from tensorboard.backend.event_processing import event_multiplexer

    multiplexer = event_multiplexer.EventMultiplexer(purge_orphaned_data=True)
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    out = {}
    for run, tags in multiplexer.Runs().items():
        out[run] = {
            tag: [(event.step, event.value) for event in multiplexer.Scalars(run, tag)] for tag in tags["scalars"]
        }
    return out


def test_tensorboard_lists_every_run_with_its_curve(readme_study):
    workdir, _ = readme_study
    runs = _tensorboard_runs(os.path.join(workdir, "tensorboard"))
    assert sorted(runs) == [f"run_{i:05d}" for i in range(32)]
    lines = metrics.read_lines(os.path.join(workdir, "metrics.jsonl"))
    for line in lines:
        for j, run in enumerate(line["runs"]):
            points = dict(runs[f"run_{run:05d}"]["train/loss"])
            assert points[line["epoch"]] == pytest.approx(line["train_loss"][j], rel=1e-6)
    assert [step for step, _ in runs["run_00007"]["train/loss"]] == list(range(1, 21))
    assert [step for step, _ in runs["run_00007"]["test/accuracy"]] == [20]


def test_timings_json_names_every_phase_of_the_readme_study(readme_study):
    workdir, result = readme_study
    timings = store.read_json(os.path.join(workdir, "timings.json"))
    assert set(timings) == {"data", "setup", "compile", "train", "evaluate", "write", "estimators", "plots"}
    assert all(seconds >= 0 for seconds in timings.values()), timings
    # 8 groups trained, so training time is far more than one group's compile-free evaluation.
    assert timings["train"] > timings["evaluate"] > 0 and timings["compile"] > 0
    assert result.timings == pytest.approx(timings, abs=1e-3)
    # Reading the finished study back says nothing about its timings (they were this call's).
    assert SeedStudy(strategy="unrolled", group_size=4, init="flax").run(workdir, progress=False).timings is None


def test_eval_every_epochs_adds_test_accuracy_lines(tmp_path):
    workdir = str(tmp_path / "w")
    code, _, err = helpers.run_in_process(
        [f"--workdir={workdir}", "--num_seeds=2", "--epochs=3", "--width=0.25", "--eval_every_epochs=2"]
    )
    assert code == 0, err
    lines = metrics.read_lines(os.path.join(workdir, "metrics.jsonl"))
    assert [("test_accuracy" in line) for line in lines] == [False, True, True]
    assert "compiling the training program" in err.splitlines()[0]
    assert "compiled in" in err.splitlines()[1]


def test_a_killed_study_resumes_without_duplicate_or_missing_epoch_lines(tmp_path):
    """SIGKILL after some epochs were logged; the resumed study logs every epoch once, with the
    values an uninterrupted study logs, and TensorBoard drops what the killed process wrote
    past its checkpoint."""
    flags = [*helpers.STUDY_FLAGS, "--epochs=4"]
    reference = str(tmp_path / "reference")
    done = helpers.run([f"--workdir={reference}", *flags])
    assert done.returncode == 0, done.stderr
    workdir = str(tmp_path / "w")
    proc = helpers.start([f"--workdir={workdir}", *flags])
    path = os.path.join(workdir, "metrics.jsonl")
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and len(metrics.read_lines(path)) < 2:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, "the study finished before it was killed"
    killed = metrics.read_lines(path)
    assert 2 <= len(killed) < 8
    resumed = helpers.run([f"--workdir={workdir}", *flags])
    assert resumed.returncode == 0, resumed.stderr

    def by_key(directory):
        lines = metrics.read_lines(os.path.join(directory, "metrics.jsonl"))
        keys = [(line["group"][0], line["epoch"]) for line in lines]
        assert len(keys) == len(set(keys)), keys
        return {key: (line["train_loss"], line["lr"]) for key, line in zip(keys, lines)}

    got, want = by_key(workdir), by_key(reference)
    assert sorted(got) == sorted(want) == [(g, e) for g in (0, 2) for e in range(1, 5)]
    assert got == want  # resumed training is bitwise the uninterrupted one
    for run, tags in _tensorboard_runs(os.path.join(workdir, "tensorboard")).items():
        assert [step for step, _ in tags["train/loss"]] == [1, 2, 3, 4], run
    with open(os.path.join(workdir, "config.json")) as handle:
        assert json.load(handle)["environment"]["host_malloc"].startswith(("kept", "default"))
