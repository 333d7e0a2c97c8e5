"""Fractional epochs, snapshot logits during training, and --recipe on the command line."""

import math
import os

import numpy as np
import pytest

from helpers import StopAfter, run_in_process
from vmaptrain import cli, presets
from vmaptrain.study import SeedStudy, load_result
from vmaptrain.workdir import load_snapshots


@pytest.fixture(scope="module")
def snapshot_study(tmp_path_factory):
    # digits: 1,437 training images, batch 64 → 22 steps per epoch; 1.5 epochs → 33 steps.
    config = dict(
        dataset="digits",
        width=0.5,
        num_seeds=4,
        group_size=2,
        epochs=1.5,
        batch_size=64,
        snapshot_epochs=(1, 2),
        checkpoint_every_steps=10,
    )
    workdir = str(tmp_path_factory.mktemp("snapshots") / "w")
    return config, workdir, SeedStudy(**config).run(workdir, progress=False)


def test_fractional_epochs_train_the_ceiling_of_their_steps(snapshot_study):
    _, _, result = snapshot_study
    assert np.asarray(result.state.step).tolist() == [math.ceil(1.5 * 22)] * 4


def test_snapshots_are_stored_per_epoch_and_the_last_is_the_final_model(snapshot_study):
    config, workdir, result = snapshot_study
    assert sorted(result.snapshots) == [1, 2]
    for logits in result.snapshots.values():
        assert logits.shape == result.logits.shape
    np.testing.assert_array_equal(result.snapshots[2], result.logits)  # epoch 2 = the end of training
    assert not np.array_equal(result.snapshots[1], result.logits)
    reloaded = load_result(workdir)
    assert sorted(reloaded.snapshots) == [1, 2]
    np.testing.assert_array_equal(reloaded.snapshots[1], result.snapshots[1])


def test_in_memory_snapshots_match_the_stored_ones(snapshot_study):
    config, _, result = snapshot_study
    one_epoch = SeedStudy(**dict(config, epochs=1.5, snapshot_epochs=(1,))).run(None, progress=False)
    # Same program (identical spec), no workdir: the in-memory float32 snapshot at epoch 1.
    np.testing.assert_allclose(one_epoch.snapshots[1], result.snapshots[1], atol=2e-2)
    np.testing.assert_array_equal(one_epoch.snapshots[1].argmax(-1), result.snapshots[1].argmax(-1))


def test_a_snapshot_store_with_a_missing_block_is_refused(snapshot_study, tmp_path):
    import shutil

    _, workdir, _ = snapshot_study
    copy = str(tmp_path / "copy")
    shutil.copytree(workdir, copy)
    os.unlink(os.path.join(copy, "predictions", "snapshots", "epoch_0001_runs_000002-000004.npy"))
    with pytest.raises(Exception, match="does not cover runs 0..3"):
        load_snapshots(copy, 4)


def test_recipe_flag_sets_fields_and_explicit_flags_override(tmp_path):
    from absl import flags

    run_in_process(["--helpshort"])  # defines the train_seeds flags
    flags.FLAGS.unparse_flags()
    cli.parse_flags(
        [
            "train_seeds",
            "--recipe=airbench94",
            "--momentum=0.9",
            "--epochs=2",
            "--snapshot_epochs=1,2",
            f"--workdir={tmp_path}",
        ]
    )
    config = cli.study_config(flags.FLAGS)
    recipe = presets.recipe("airbench94")
    assert config.model == "airbench94" and config.lookahead and config.tta == "airbench"
    assert config.lr == recipe["lr"] and config.momentum == 0.9 and config.epochs == 2
    assert config.snapshot_epochs == (1, 2) and config.dataset == "digits"
    flags.FLAGS.unparse_flags()


def test_an_interrupted_study_resumes_with_the_same_snapshots(snapshot_study, tmp_path, monkeypatch):
    from vmaptrain import study

    config, _, reference = snapshot_study
    workdir = str(tmp_path / "w")
    with monkeypatch.context() as patch:
        patch.setattr(study, "TermGuard", lambda: StopAfter(26))  # group 0, epoch 2, after snapshot 1
        with pytest.raises(study.StudyInterrupted):
            SeedStudy(**config).run(workdir, progress=False)
    assert os.listdir(os.path.join(workdir, "predictions", "snapshots")) == ["epoch_0001_runs_000000-000002.npy"]
    resumed = SeedStudy(**config).run(workdir, progress=False)
    for epoch in (1, 2):
        np.testing.assert_array_equal(resumed.snapshots[epoch], reference.snapshots[epoch])
    np.testing.assert_array_equal(resumed.logits, reference.logits)
