"""The failure catalogue: bad inputs and faults, each one 'error: …' line, a non-zero exit, and
nothing already written is changed.

Cases run the train_seeds binary in-process (same flags parser and error handling as the command
line) so they share compiled programs; the two that need another device count or a real signal
run it as a subprocess.
"""

import errno
import os
import pickle
import re
import shutil
import signal

import numpy as np
import pytest

import helpers
from conftest import snapshot
from vmaptrain import store, study

pytestmark = pytest.mark.filterwarnings("ignore")

# One epoch per run keeps each training case short; groups of 2 give a store of two blocks.
FLAGS = [
    "--num_seeds=4",
    "--group_size=2",
    "--epochs=1",
    "--batch_size=32",
    "--width=0.5",
    "--checkpoint_every_steps=4",
]
GROUP_STEPS = 1433 // 32  # digits train split / batch: one group's steps for one epoch


def run(*args):
    return helpers.run_in_process(list(args))


def assert_one_error(code, err, pattern):
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code not in (0, None), err
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in err, err


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("finished") / "w")
    code, _, err = run(f"--workdir={workdir}", *FLAGS)
    assert code == 0, err
    return workdir


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A workdir whose first group is stored and whose second group stopped mid-epoch."""
    workdir = str(tmp_path_factory.mktemp("interrupted") / "w")
    with pytest.MonkeyPatch.context() as patch:
        # The loop reads the flag once per step and once more after each (every 4 steps) save:
        # group 0 takes 44 + 11 reads, steps 1-9 of group 1 take 9 + 2, so step 10 stops.
        patch.setattr(study, "TermGuard", lambda: helpers.StopAfter(GROUP_STEPS + GROUP_STEPS // 4 + 11))
        code, _, err = run(f"--workdir={workdir}", *FLAGS)
    assert_one_error(code, err, r"stopped by SIGTERM at epoch 1, step 10; checkpoint saved")
    assert code == 143
    assert sorted(os.listdir(os.path.join(workdir, "predictions"))) == [
        "runs_000000-000002.json",
        "runs_000000-000002.npy",
    ]
    return workdir


def copy(workdir, tmp_path):
    target = str(tmp_path / "w")
    shutil.copytree(workdir, target)
    return target


# Bad flags and configurations: refused before anything is written.
@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--dataset=imagenet7"], r"dataset 'imagenet7': unknown source"),
        (["--model=resnet1000"], r"unknown model 'resnet1000'"),
        (["--num_seeds=0"], r"num_seeds"),
        (["--epochs=-1"], r"epochs"),
        (["--batch_size=100000"], r"batch_size 100000 is larger than the training set \(1433 examples\)"),
        (["--num_seeds=4", "--lr=0.1,0.2"], r"lr has 2 values but num_seeds is 4"),
        (["--lr=fast"], r"expected a number .* got 'fast'"),
        (["--lr=nan"], r"lr"),
        (["--strategy=warp"], r"unknown strategy 'warp'"),
        (["--vary=init,colour"], r"unknown stream"),
        (["--optimizer=adagrad"], r"optimizer"),
        (["--model=resnet9_paper"], r"resnet9_paper needs images of at least 12×12 pixels"),
        (["--cutout=12"], r"cutout: a 12×12 square does not fit inside 8×8 images"),
        (["--poke_step=3", "--poke_param=nope/kernel"], r"poke parameter 'nope/kernel' not in the model"),
        (["--epochs=two"], r"flag --epochs=two: could not convert string to float"),
        (["--no_such_flag=1"], r"Unknown command line flag 'no_such_flag'"),
        (["--num_processes=2", "--process_id=0"], r"cannot join the multi-process study"),
        (["--dataset=idx:/nonexistent/fashion"], r"/nonexistent/fashion"),
    ],
)
def test_bad_flags_are_refused_and_write_nothing(tmp_path, args, pattern):
    workdir = tmp_path / "w"
    code, _, err = run(f"--workdir={workdir}", *args)
    assert_one_error(code, err, pattern)
    assert code == 2
    assert not workdir.exists()


def test_missing_workdir_flag_and_positional_arguments(tmp_path):
    code, _, err = run()
    assert_one_error(code, err, r"--workdir must have a value")
    code, _, err = run(f"--workdir={tmp_path / 'w'}", "extra")
    assert_one_error(code, err, r"unexpected positional arguments: extra")


def test_malicious_pickle_in_a_cifar_directory_is_not_executed(tmp_path):
    directory = tmp_path / "cifar"
    directory.mkdir()
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for name in [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
        "batches.meta",
    ]:
        (directory / name).write_bytes(pickle.dumps(Exploit()))
    code, _, err = run(f"--workdir={tmp_path / 'w'}", f"--dataset=cifar:{directory}")
    assert_one_error(code, err, r"(forbidden|not allowed|refus|unpickl|global)")
    assert not marker.exists() and not (tmp_path / "w").exists()


def test_npz_with_object_arrays_is_refused(tmp_path):
    path = tmp_path / "data.npz"
    x = np.empty((4,), object)
    np.savez(path, x_train=x, y_train=np.zeros(4, np.int64), x_test=x, y_test=np.zeros(4, np.int64))
    code, _, err = run(f"--workdir={tmp_path / 'w'}", f"--dataset=npz:{path}")
    assert_one_error(code, err, r"data\.npz")


def test_truncated_idx_file_is_refused(tmp_path):
    source = "/usr/share/datasets/fashion-mnist"
    if not os.path.isdir(source):
        pytest.skip("apt package dataset-fashion-mnist is not installed (.ci/run installs it)")
    directory = tmp_path / "fashion"
    shutil.copytree(source, directory)
    victim = sorted(p for p in os.listdir(directory) if p.startswith("t10k-images"))[0]
    (directory / victim).write_bytes((directory / victim).read_bytes()[:3])
    code, _, err = run(f"--workdir={tmp_path / 'w'}", f"--dataset=idx:{directory}")
    assert_one_error(code, err, r"t10k-images")


# Workdirs that are not this study's, or cannot be written.
def test_workdir_of_another_config_is_untouched(finished):
    before = snapshot(finished)
    code, _, err = run(f"--workdir={finished}", *FLAGS[:-1], "--lr=0.07", "--checkpoint_every_steps=4", "--epochs=2")
    assert_one_error(code, err, r"holds a different study \(.*epochs: saved 1 vs now 2.*lr: saved 0.05 vs now 0.07")
    assert snapshot(finished) == before


def test_corrupt_config_json_is_untouched(finished, tmp_path):
    workdir = copy(finished, tmp_path)
    with open(os.path.join(workdir, "config.json"), "w") as handle:
        handle.write('{"config": {"dataset": "digits", "num_se')
    before = snapshot(workdir)
    code, _, err = run(f"--workdir={workdir}", *FLAGS)
    assert_one_error(code, err, r"config.json is not a vmaptrain config")
    assert snapshot(workdir) == before


def test_workdir_that_is_a_file(tmp_path):
    path = tmp_path / "w"
    path.write_text("keep me")
    code, _, err = run(f"--workdir={path}", *FLAGS)
    assert_one_error(code, err, r"exists and is not a directory")
    assert path.read_text() == "keep me"


def test_unwritable_workdir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    code, _, err = run(f"--workdir={blocker / 'w'}", *FLAGS)
    assert_one_error(code, err, r"cannot write to workdir .*Not a directory")
    assert blocker.read_text() == "keep me"


def test_truncated_logits_of_a_finished_study(finished, tmp_path):
    workdir = copy(finished, tmp_path)
    path = os.path.join(workdir, "logits.npy")
    with open(path, "r+b") as handle:
        handle.truncate(100)
    before = snapshot(workdir)
    code, _, err = run(f"--workdir={workdir}", *FLAGS)
    assert_one_error(code, err, r"logits.npy is unreadable .*delete it and summary.json and rerun")
    assert snapshot(workdir) == before
    # The advice works: the outputs are reassembled from the predictions store, no retraining.
    os.unlink(path)
    os.unlink(os.path.join(workdir, "summary.json"))
    code, _, err = run(f"--workdir={workdir}", *FLAGS)
    assert code == 0, err
    np.testing.assert_array_equal(np.load(path), np.load(os.path.join(finished, "logits.npy")))


def test_truncated_predictions_block(interrupted, tmp_path):
    workdir = copy(interrupted, tmp_path)
    block = os.path.join(workdir, "predictions", "runs_000000-000002.npy")
    with open(block, "r+b") as handle:
        handle.truncate(64)
    before = snapshot(workdir)
    code, _, err = run(f"--workdir={workdir}", *FLAGS)
    assert_one_error(code, err, r"predictions block .*runs_000000-000002.npy is damaged")
    assert snapshot(workdir) == before


def test_corrupt_checkpoint(interrupted, tmp_path):
    workdir = copy(interrupted, tmp_path)
    for dirpath, _, files in os.walk(os.path.join(workdir, "checkpoints")):
        for name in files:
            with open(os.path.join(dirpath, name), "wb") as handle:
                handle.write(b"\x00garbage")
    before = snapshot(workdir)
    code, _, err = run(f"--workdir={workdir}", *FLAGS)
    assert_one_error(code, err, r"checkpoint .*group_000002-000004.* cannot be restored")
    assert snapshot(workdir) == before


def test_interrupted_study_resumes_to_the_uninterrupted_logits(interrupted, finished, tmp_path):
    workdir = copy(interrupted, tmp_path)
    code, _, err = run(f"--workdir={workdir}", *FLAGS)
    assert code == 0, err
    np.testing.assert_array_equal(
        np.load(os.path.join(workdir, "logits.npy")), np.load(os.path.join(finished, "logits.npy"))
    )


def test_disk_full_while_storing_predictions(interrupted, finished, tmp_path, monkeypatch):
    workdir = copy(interrupted, tmp_path)
    before = snapshot(workdir)
    real = store._atomic

    def full_disk(path, write):
        if "predictions" in path:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real(path, write)

    monkeypatch.setattr(store, "_atomic", full_disk)
    code, _, err = run(f"--workdir={workdir}", *FLAGS)
    assert_one_error(code, err, r"No space left on device: .*predictions/runs_000002-000004")
    # What was stored before is intact; the group's checkpoints are still there to resume from.
    # The metrics written as the group trained were appended (metrics.jsonl grows, TensorBoard
    # gets the group's runs); nothing already there changed.
    after = snapshot(workdir)
    for name, content in before.items():
        if "checkpoints" in name or name == "config.json":
            continue
        if name == "metrics.jsonl":
            assert after[name].startswith(content) and len(after[name]) > len(content)
        else:
            assert after[name] == content, name
    added = set(after) - set(before)
    assert added and all(k.startswith(("checkpoints", "tensorboard/run_00002", "tensorboard/run_00003")) for k in added)
    assert any("checkpoints" in k for k in after)
    monkeypatch.setattr(store, "_atomic", real)
    code, _, err = run(f"--workdir={workdir}", *FLAGS)
    assert code == 0, err
    np.testing.assert_array_equal(
        np.load(os.path.join(workdir, "logits.npy")), np.load(os.path.join(finished, "logits.npy"))
    )


def test_num_seeds_not_divisible_by_the_device_count(tmp_path):
    proc = helpers.run([f"--workdir={tmp_path / 'w'}", "--num_seeds=3", "--epochs=1", "--width=0.5"], devices=2)
    assert_one_error(proc.returncode, proc.stderr, r"num_seeds \(3\) must be a multiple of the device count \(2\)")
    assert not (tmp_path / "w").exists()


def test_sigterm_mid_epoch_saves_and_exits_143(tmp_path):
    workdir = str(tmp_path / "w")
    proc = helpers.start([f"--workdir={workdir}", *FLAGS])
    assert helpers.wait_for_checkpoint(workdir, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert_one_error(proc.returncode, err, r"stopped by SIGTERM at epoch 1, step \d+; checkpoint saved")
    assert proc.returncode == 143
    assert os.path.exists(os.path.join(workdir, "config.json"))
    assert not os.path.exists(os.path.join(workdir, "logits.npy"))
