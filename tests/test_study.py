"""The study API and the train_seeds binary, end to end on real digits."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import snapshot
from vmaptrain.config import StudyConfig, StudyError
from vmaptrain.engine import programs as engine_programs
from vmaptrain.engine.trainer import run_inputs
from vmaptrain.study import SeedStudy

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def finished(tmp_path_factory, small_config):
    workdir = str(tmp_path_factory.mktemp("study") / "digits")
    result = SeedStudy(**small_config, num_seeds=4).run(workdir, progress=False)
    return workdir, result


def test_workdir_holds_every_output(finished):
    workdir, result = finished
    names = set(os.listdir(workdir))
    assert {"config.json", "logits.npy", "labels.npy", "runs.json", "summary.json", "accuracy_hist.png"} <= names
    assert not [n for n in names if n.startswith(".tmp-")]
    logits = np.load(os.path.join(workdir, "logits.npy"))
    labels = np.load(os.path.join(workdir, "labels.npy"))
    assert logits.dtype == np.float16 and logits.shape == (4, 364, 10)
    assert labels.shape == (364,) and labels.min() >= 0 and labels.max() == 9
    runs = json.load(open(os.path.join(workdir, "runs.json")))
    assert [r["index"] for r in runs] == [0, 1, 2, 3]
    assert runs[2]["seeds"] == {"init": 2, "order": 2, "aug": 2}
    assert set(runs[0]["hyperparameters"]) == {"lr", "wd", "momentum", "label_smoothing"}
    accuracies = (logits.astype(np.float32).argmax(-1) == labels).mean(1)
    np.testing.assert_allclose([r["test_accuracy"] for r in runs], accuracies, atol=1 / 364)
    summary = json.load(open(os.path.join(workdir, "summary.json")))
    assert summary["runs"] == 4 and summary["runs_diverged"] == 0
    assert summary["accuracy_std"] == pytest.approx(np.std(accuracies, ddof=1), abs=2 / 364)
    assert summary["accuracy_min"] <= summary["accuracy_mean"] <= summary["accuracy_max"]
    assert summary["accuracy_mean"] > 0.75  # two epochs of a half-width CNN learn digits
    saved = json.load(open(os.path.join(workdir, "config.json")))
    assert saved["config"]["num_seeds"] == 4 and "jax" in saved["versions"]
    with open(os.path.join(workdir, "accuracy_hist.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_same_config_gives_bitwise_identical_logits(small_config, finished):
    _, first = finished
    engine_programs.clear_cache()  # recompile from scratch
    again = SeedStudy(**small_config, num_seeds=4).run(progress=False)
    # The workdir stores float16 logits; the in-memory result keeps float32.
    np.testing.assert_array_equal(again.logits.astype(np.float16), first.logits.astype(np.float16))


def test_rerunning_a_finished_workdir_returns_it_without_training(finished, small_config):
    workdir, first = finished
    before = os.path.getmtime(os.path.join(workdir, "logits.npy"))
    again = SeedStudy(**small_config, num_seeds=4).run(workdir, progress=False)
    assert os.path.getmtime(os.path.join(workdir, "logits.npy")) == before
    np.testing.assert_array_equal(again.logits, first.logits)


def test_a_workdir_of_another_study_is_refused_and_untouched(finished, small_config):
    workdir, _ = finished
    before = snapshot(workdir)
    with pytest.raises(StudyError, match=r"holds a different study \(epochs: saved 2 vs now 3, lr"):
        SeedStudy(**dict(small_config, epochs=3, lr=0.1), num_seeds=4).run(workdir, progress=False)
    assert snapshot(workdir) == before


def test_varying_only_order_keeps_init_weights_identical(small_config):
    config = StudyConfig(**small_config, num_seeds=3, vary="order")
    seeds, inputs = run_inputs(config, [0, 1, 2])
    assert [s.as_dict() for s in seeds] == [{"init": 0, "order": i, "aug": 0} for i in range(3)]
    result = SeedStudy(config).run(progress=False)
    assert not np.array_equal(result.logits[0], result.logits[1])
    state = result.state
    import jax
    import jax.numpy as jnp

    # init only: trained weights differ
    programs = engine_programs.programs_for(result.spec, config.strategy, tuple(jax.devices()))
    initial = programs.init(inputs, jnp.zeros((1, 8, 8, 1)))
    for leaf in jax.tree.leaves(initial.params):
        np.testing.assert_array_equal(leaf[0], leaf[1])
        np.testing.assert_array_equal(leaf[0], leaf[2])
    assert not np.array_equal(state.params["conv0"]["kernel"][0], state.params["conv0"]["kernel"][1])
    assert not np.array_equal(state.order_key[0], state.order_key[1])
    np.testing.assert_array_equal(state.aug_key[0], state.aug_key[2])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(num_seeds=0), "num_seeds must be a positive integer"),
        (dict(num_seeds=-3), "num_seeds must be a positive integer"),
        (dict(model="resnet1000"), "unknown model 'resnet1000'"),
        (dict(dataset="imagenet21k"), "imagenet21k"),
        (dict(batch_size=5000), "batch_size 5000 is larger than the training set"),
        (dict(model="resnet9_paper"), "at least 12×12"),
        (dict(lr=[0.1, 0.2]), "lr has 2 values but num_seeds is 4"),
        (dict(vary="init,dropout"), "unknown stream"),
        (dict(strategy="pmap"), "unknown strategy"),
        (dict(poke_step=0, poke_param="conv9/kernel"), "poke parameter 'conv9/kernel' not in the model"),
        (dict(model="airbench94"), "at least 16×16"),
        (dict(snapshot_epochs=(3,)), "snapshot_epochs must be increasing whole epochs in 1..2"),
        (dict(snapshot_epochs=(2, 1)), "snapshot_epochs must be increasing"),
        (dict(schedule_start=0.2), "apply only to schedule=piecewise"),
        (dict(tta="crop:3:2"), "tta 'crop:3:2'"),
        (dict(epochs=-0.5), "epochs must be a number ≥ 0"),
        (dict(schedule_cycles=3, warmup_epochs=1.0), "warmup_steps must lie in"),
    ],
)
def test_bad_studies_fail_with_one_clear_message(small_config, overrides, message, tmp_path):
    config = dict(small_config, num_seeds=4)
    config.update(overrides)
    with pytest.raises(StudyError, match=message.replace("(", r"\(")):
        SeedStudy(**config).run(str(tmp_path / "w"), progress=False)


def test_an_unwritable_workdir_is_refused(small_config, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StudyError, match="cannot write to workdir"):
        SeedStudy(**small_config, num_seeds=1).run(str(blocker / "w"), progress=False)
    assert blocker.read_text() == "not a directory"


def _binary(*args, cwd=REPO):
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "experiments", "train_seeds.py"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def test_binary_trains_a_study_and_prints_progress(tmp_path):
    workdir = tmp_path / "w"
    proc = _binary(f"--workdir={workdir}", "--num_seeds=2", "--epochs=1", "--width=0.5", "--lr=0.05,0.1")
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1/1 | runs done" in proc.stderr and "runs/s | ETA" in proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["runs"] == 2
    runs = json.load(open(workdir / "runs.json"))
    assert [r["hyperparameters"]["lr"] for r in runs] == [0.05, 0.1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--num_seeds=0"], "error: num_seeds must be a positive integer"),
        (["--dataset=nosuch"], "error: "),
        (["--lr=fast"], "error: expected a number"),
        (["--model=vgg99"], "error: unknown model 'vgg99'"),
        (["--dataset=idx:/nonexistent/dir"], "error: "),
        (["--recipe=airbench"], "error: unknown recipe 'airbench'"),
        (["--snapshot_epochs=1,x"], "error: expected a number"),
    ],
)
def test_binary_bad_input_is_one_error_line_and_nonzero_exit(tmp_path, args, message):
    proc = _binary(f"--workdir={tmp_path / 'w'}", *args)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr
    assert "Traceback" not in proc.stderr
