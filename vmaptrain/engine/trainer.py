"""The group trainer: one host loop that trains a group of stacked runs, with hooks.

    trainer = GroupTrainer(programs, config, data)
    state = trainer.init(range(start, end))          # or trainer.restore(...) from a checkpoint
    state = trainer.train(state, state.step, trainer.total_steps, hooks)
    logits = trainer.evaluate(state)                 # this process's runs on the test set

The loop is a Python loop over jitted steps (one call per optimizer step): convolutions inside
`lax.scan` are ~80× slower on XLA:CPU. Per-epoch permutations of every run come from one jitted
call; batches are gathered and augmented inside the step from the device-resident uint8
training set. Checkpoints, snapshots, progress, SIGTERM and metrics are hooks
(`vmaptrain.engine.hooks`) called after every step.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vmaptrain import poke, rng
from vmaptrain.data import Dataset, normalize
from vmaptrain.engine import placement, seed_axis
from vmaptrain.engine.programs import Programs
from vmaptrain.train import Hyper, RunState


@dataclasses.dataclass(frozen=True)
class GroupState:
    """A group's training state between steps. `run`, `loss_sum` and `last_loss` are global
    arrays sharded over the seed mesh (what a checkpoint holds); `indices` and `seeds` describe
    this process's runs; `permutations` caches the data order of epoch `perm_epoch`."""

    run: RunState
    loss_sum: jax.Array  # [runs] float32: this epoch's step losses so far
    last_loss: jax.Array  # [runs]: mean train loss of the last finished epoch (NaN before the first)
    step: int  # optimizer steps every run of the group has taken
    indices: tuple[int, ...] = ()
    seeds: tuple[rng.RunSeeds, ...] = ()
    permutations: Any = None
    perm_epoch: int = -1

    def checkpoint_tree(self) -> dict:
        return {"run": self.run, "loss_sum": self.loss_sum, "last_loss": self.last_loss}

    def replace(self, **changes) -> GroupState:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class StepEvent:
    """What the step just taken was: `step` counts steps done (1 after the first)."""

    step: int
    epoch: int  # 0-based epoch of the step
    step_in_epoch: int
    epoch_end: bool


def run_inputs(config, indices: Sequence[int]):
    """Per-run init inputs for the runs `indices` (stacked): keys, hyperparameters, pokes; and
    each run's stream seeds. Run i's inputs depend only on i and the config, never on which runs
    share its program."""
    vary = rng.parse_vary(config.vary)
    seeds = [rng.run_seeds(i, vary, config.fixed_seed) for i in indices]
    keys = {s: seed_axis.stream_keys(config.seed, seeds, s) for s in rng.STREAMS}

    def column(name, dtype):
        values = config.per_run(name)
        return np.asarray([values[i] for i in indices], dtype)

    hyper = Hyper(
        lr=column("lr", np.float32),
        wd=column("wd", np.float32),
        momentum=column("momentum", np.float32),
        label_smoothing=column("label_smoothing", np.float32),
    )
    pokes = poke.Poke(
        step=column("poke_step", np.int32),
        index=column("poke_index", np.int32),
        factor=np.full((len(indices),), config.poke_factor, np.float32),
    )
    return seeds, (keys["init"], keys["order"], keys["aug"], hyper, pokes)


def device_data(data: Dataset) -> dict:
    """The training set and normalisation constants (host arrays; placed once per trainer)."""
    # Cutout fills with the mean colour truncated to integers, as the paper's pipeline did.
    fill = np.clip(np.floor(data.mean), 0, 255).astype(data.x_train.dtype)
    return {
        "x_train": data.x_train,
        "y_train": data.y_train.astype(np.int32),
        "mean": data.mean.astype(np.float32),
        "std": data.std.astype(np.float32),
        "fill": fill,
    }


class GroupTrainer:
    """Trains groups of runs of one configuration with one set of compiled `programs`.

    `total_steps` defaults to the config's (ceil(epochs · steps per epoch)); the last epoch may
    be partial.
    """

    def __init__(self, programs: Programs, config, data: Dataset, *, eval_batch_size: int | None = None):
        self.programs, self.config, self.data = programs, config, data
        self.spec, self.mesh = programs.spec, programs.mesh
        self.steps_per_epoch = self.spec.steps_per_epoch
        self.total_steps = config.total_steps(self.steps_per_epoch)
        self.eval_batch_size = eval_batch_size or config.eval_batch_size
        self.dev = placement.put_replicated(self.mesh, device_data(data))
        self._last_eval = None
        self.eval_seconds = 0.0  # wall time spent evaluating (after the training it waits for)

    # -- state ---------------------------------------------------------------------------

    def init(self, indices: Sequence[int]) -> GroupState:
        """Fresh runs `indices` (the whole group, over every process); the state holds this
        process's share."""
        indices = list(indices)
        size = len(indices)
        local = indices[placement.local_run_slice(self.mesh, size)]
        seeds, inputs = run_inputs(self.config, local)
        sample = jnp.zeros((1,) + self.data.x_train.shape[1:], jnp.float32)
        run = self.programs.init(placement.put_runs(self.mesh, inputs, size), sample)
        return self.start(run, local, seeds)

    def start(self, run: RunState, indices: Sequence[int] = (), seeds: Sequence[rng.RunSeeds] = (), step: int = 0):
        """A group state around stacked (global) run states `run` that have taken `step` steps."""
        size = len(jax.tree.leaves(run)[0])
        zeros = placement.put_runs(self.mesh, np.zeros(len(placement_indices(self.mesh, size)), np.float32), size)
        return GroupState(run, zeros, zeros + jnp.nan, step, tuple(indices), tuple(seeds))

    def place(self, host_run: RunState) -> RunState:
        """Host stacked run states (this process's runs) → global arrays over the seed mesh."""
        size = len(jax.tree.leaves(host_run)[0]) * jax.process_count()
        return placement.put_runs(self.mesh, host_run, size)

    def with_checkpoint(self, state: GroupState, tree: dict, position: dict) -> GroupState:
        """`state` continued from a restored checkpoint tree and its {epoch, step_in_epoch}."""
        step = min(position["epoch"] * self.steps_per_epoch + position["step_in_epoch"], self.total_steps)
        return state.replace(
            run=tree["run"], loss_sum=tree["loss_sum"], last_loss=tree["last_loss"], step=step, perm_epoch=-1
        )

    def position(self, state: GroupState) -> dict:
        """Where a checkpoint of `state` resumes: the next step's epoch and step in epoch."""
        epoch, k = divmod(state.step, self.steps_per_epoch)
        if state.step == self.total_steps and k:  # after a partial last epoch
            epoch, k = epoch + 1, 0
        return {"epoch": epoch, "step_in_epoch": k}

    def steps_in_epoch(self, epoch: int) -> int:
        return min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch)

    @property
    def epochs(self) -> int:
        return math.ceil(self.total_steps / self.steps_per_epoch)

    # -- the loop ------------------------------------------------------------------------

    def train(self, state: GroupState, from_step: int | None = None, to_step: int | None = None, hooks=()):
        """Steps `from_step`..`to_step`-1 (default: from where `state` is to the end), calling
        every hook after each step. The only host training loop of vmaptrain."""
        from_step = state.step if from_step is None else from_step
        to_step = self.total_steps if to_step is None else to_step
        state = state.replace(step=from_step)
        n = len(self.data.y_train)
        for hook in hooks:
            hook.begin(self, state)
        for step in range(from_step, to_step):
            epoch, k = divmod(step, self.steps_per_epoch)
            if state.perm_epoch != epoch:
                permutations = self.programs.permutations(state.run.order_key, np.int32(epoch), n)
                state = state.replace(permutations=permutations, perm_epoch=epoch)
            run, metrics = self.programs.step(state.run, state.permutations, self.dev, np.int32(epoch), np.int32(k))
            loss_sum, last_loss = state.loss_sum + metrics["loss"], state.last_loss
            epoch_end = k + 1 == self.steps_in_epoch(epoch)
            if epoch_end:
                last_loss, loss_sum = loss_sum / self.steps_in_epoch(epoch), loss_sum * 0
            state = state.replace(run=run, loss_sum=loss_sum, last_loss=last_loss, step=step + 1)
            event = StepEvent(step + 1, epoch, k, epoch_end)
            for hook in hooks:
                hook.after_step(self, state, event)
        for hook in hooks:
            hook.end(self, state)
        return state

    # -- evaluation ----------------------------------------------------------------------

    def evaluate(self, state: GroupState, images: np.ndarray | None = None, tta: str | None = None) -> np.ndarray:
        """This process's runs' logits [local runs, examples, classes] float32 on `images`
        (uint8, default: the test split), with the spec's test-time augmentation or `tta`."""
        # The last test-set evaluation is reused for the same state (a metrics hook at the last
        # epoch and the study's final evaluation); holding `state.run` keeps the identity test sound.
        if images is None and self._last_eval is not None:
            run, cached_tta, logits = self._last_eval
            if run is state.run and cached_tta == tta:
                return logits
        jax.block_until_ready(state.run)  # the steps still queued are training, not evaluation
        started = time.perf_counter()
        x = self.data.x_test if images is None else images
        n = len(x)
        batch = min(self.eval_batch_size, n)
        padded = math.ceil(n / batch) * batch
        # Pad to whole batches (BN is in eval mode, so padding never touches real examples).
        x = np.concatenate([x, np.zeros((padded - n,) + x.shape[1:], x.dtype)])
        chunks = []
        for start in range(0, padded, batch):
            part = normalize(x[start : start + batch], self.data.mean, self.data.std)
            part = placement.put_replicated(self.mesh, np.asarray(part))
            chunks.append(placement.local_runs(self.programs.eval(state.run, part, tta)))
        logits = np.concatenate(chunks, axis=1)[:, :n].astype(np.float32)
        if images is None:
            self._last_eval = (state.run, tta, logits)
        self.eval_seconds += time.perf_counter() - started
        return logits

    def test_accuracy(self, state: GroupState) -> np.ndarray:
        """This process's runs' accuracy on the test split."""
        logits = self.evaluate(state)
        return (logits.argmax(-1) == np.asarray(self.data.y_test)[None]).mean(axis=1)

    def lr(self, state: GroupState) -> np.ndarray:
        """This process's runs' learning rate at their last step (peak lr × schedule)."""
        factor = float(self.spec.schedule.factor(jnp.int32(max(state.step - 1, 0))))
        return placement.local_runs(state.run.hyper.lr).astype(np.float64) * factor


def placement_indices(mesh, size: int) -> range:
    """Positions, within a group of `size`, of this process's runs."""
    local = placement.local_run_slice(mesh, size)
    return range(local.start, local.stop)
