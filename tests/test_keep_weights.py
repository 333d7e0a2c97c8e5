"""--keep_weights: a study's final variables saved with orbax, read back by connectivity and the
mitigations figure instead of retraining (counted in training steps)."""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

from vmaptrain import replicate
from vmaptrain.config import StudyConfig
from vmaptrain.connectivity import experiment
from vmaptrain.engine.trainer import GroupTrainer
from vmaptrain.replicate import mitigations
from vmaptrain.study import SeedStudy, final_variables

CONFIG = dict(dataset="digits", width=0.25, num_seeds=2, epochs=1, batch_size=128)
STEPS = 1433 // 128  # one epoch of digits


@pytest.fixture
def trained_steps(monkeypatch):
    """Training steps taken, per call of the group trainer: (schedule cycles, steps)."""
    calls = []
    original = GroupTrainer.train

    def counting(self, state, from_step=None, to_step=None, hooks=()):
        start = state.step if from_step is None else from_step
        stop = self.total_steps if to_step is None else to_step
        calls.append((self.config.schedule_cycles, stop - start))
        return original(self, state, from_step, to_step, hooks)

    monkeypatch.setattr(GroupTrainer, "train", counting)
    return calls


def test_connectivity_reads_kept_weights_instead_of_retraining(tmp_path, trained_steps):
    config = StudyConfig(**CONFIG)
    workdir = str(tmp_path / "study")
    trained = SeedStudy(config, keep_weights=True).run(workdir, progress=False)
    assert sum(n for _, n in trained_steps) == STEPS
    assert os.path.isdir(os.path.join(workdir, "weights", "runs_000000-000002"))
    trained_steps.clear()
    variables, result = experiment.study_variables(config, workdir)
    assert trained_steps == []
    for got, want in zip(jax.tree.leaves(variables["params"]), jax.tree.leaves(trained.state.params)):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(jax.tree.leaves(variables["batch_stats"]), jax.tree.leaves(trained.state.batch_stats)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(result.logits, trained.logits)


def test_a_study_finished_without_weights_is_retrained_once(tmp_path, trained_steps):
    config = StudyConfig(**CONFIG)
    workdir = str(tmp_path / "study")
    SeedStudy(config).run(workdir, progress=False)
    assert not os.path.exists(os.path.join(workdir, "weights"))
    trained_steps.clear()
    final_variables(config, workdir, progress=False)
    assert sum(n for _, n in trained_steps) == STEPS
    trained_steps.clear()
    final_variables(config, workdir, progress=False)
    assert trained_steps == []


def test_mitigations_reads_the_single_model_weights(tmp_path, trained_steps):
    scale = replicate.scale_named("smoke")
    workdir = str(tmp_path / "mitigations")
    epochs = mitigations.CYCLES["smoke"] * -(-scale.long_epochs // mitigations.CYCLES["smoke"])
    single = scale.config(epochs=epochs)
    final_variables(single, os.path.join(workdir, f"single_{epochs:04d}"), progress=False)
    assert trained_steps and all(cycles == 1 for cycles, _ in trained_steps)
    trained_steps.clear()
    mitigations.run(workdir, scale, progress=False)
    # Only the snapshot-ensemble study (schedule restarts) trains; the single model is read back.
    assert trained_steps and all(cycles == mitigations.CYCLES["smoke"] for cycles, _ in trained_steps)
