"""Resume after SIGKILL / SIGTERM, divergence isolation, several devices and processes."""

import os
import random
import signal
import socket

import numpy as np
import pytest

import helpers
from vmaptrain.study import SeedStudy

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted study, run by the binary on one device."""
    workdir = str(tmp_path_factory.mktemp("ref") / "w")
    proc = helpers.run([f"--workdir={workdir}", *helpers.STUDY_FLAGS])
    assert proc.returncode == 0, proc.stderr
    return np.load(os.path.join(workdir, "logits.npy"))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_study_resumes_to_bitwise_identical_logits(tmp_path, reference, sig):
    workdir = str(tmp_path / "w")
    proc = helpers.start([f"--workdir={workdir}", *helpers.STUDY_FLAGS])
    assert helpers.wait_for_checkpoint(workdir, proc), "the study finished before a checkpoint was seen"
    import time

    time.sleep(random.Random(sig).uniform(0.0, 0.3))  # a random step after the first checkpoint
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    if sig == signal.SIGTERM:
        assert proc.returncode == 143, stderr
        assert "stopped by SIGTERM" in stderr and "rerun the same command to resume" in stderr
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not os.path.exists(os.path.join(workdir, "logits.npy"))
    resumed = helpers.run([f"--workdir={workdir}", *helpers.STUDY_FLAGS])
    assert resumed.returncode == 0, resumed.stderr
    np.testing.assert_array_equal(np.load(os.path.join(workdir, "logits.npy")), reference)


def test_two_devices_give_the_one_device_logits_and_no_collectives(tmp_path, reference):
    workdir = str(tmp_path / "w")
    proc = helpers.run([f"--workdir={workdir}", *helpers.STUDY_FLAGS], devices=2)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(os.path.join(workdir, "logits.npy")), reference)
    hlo = helpers.run_python(
        "import sys, jax; sys.path.insert(0, 'tests'); import helpers; from vmaptrain.engine import placement;"
        "assert jax.device_count() == 2; print(placement.collectives_in(helpers.example_step_hlo()))",
        devices=2,
    )
    assert hlo.returncode == 0, hlo.stderr
    assert hlo.stdout.strip().splitlines()[-1] == "[]"


def test_a_study_saved_on_two_devices_resumes_on_one(tmp_path, reference):
    workdir = str(tmp_path / "w")
    proc = helpers.start([f"--workdir={workdir}", *helpers.STUDY_FLAGS], devices=2)
    assert helpers.wait_for_checkpoint(workdir, proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 143
    resumed = helpers.run([f"--workdir={workdir}", *helpers.STUDY_FLAGS], devices=1)
    assert resumed.returncode == 0, resumed.stderr
    np.testing.assert_array_equal(np.load(os.path.join(workdir, "logits.npy")), reference)


def test_two_processes_give_the_one_process_logits(tmp_path, reference):
    workdir = str(tmp_path / "w")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    procs = [
        helpers.start(
            [
                f"--workdir={workdir}",
                *helpers.STUDY_FLAGS,
                f"--coordinator_address=127.0.0.1:{port}",
                "--num_processes=2",
                f"--process_id={i}",
            ]
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    np.testing.assert_array_equal(np.load(os.path.join(workdir, "logits.npy")), reference)
    blocks = sorted(os.listdir(os.path.join(workdir, "predictions")))
    # Each process wrote only its own runs: one run per process per group of two.
    assert [b for b in blocks if b.endswith(".npy")] == [f"runs_{i:06d}-{i + 1:06d}.npy" for i in range(4)]


def test_a_diverging_run_leaves_the_others_bitwise_unchanged(small_config):
    plain = SeedStudy(**small_config, num_seeds=4).run(progress=False)
    with_bad = SeedStudy(**dict(small_config, lr=[0.05, 1e9, 0.05, 0.05]), num_seeds=4).run(progress=False)
    assert [r["status"] for r in with_bad.runs] == ["finished", "diverged", "finished", "finished"]
    np.testing.assert_array_equal(with_bad.logits[[0, 2, 3]], plain.logits[[0, 2, 3]])
    assert with_bad.summary["runs_diverged"] == 1
    assert with_bad.summary["estimators"]["num_runs"] == 3
