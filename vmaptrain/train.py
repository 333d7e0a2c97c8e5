"""One run: initialise, take a training step, evaluate.

Everything here is a pure function of a single run's state; the seed axis is added by
the engine (`vmaptrain.engine.seed_axis`) and nowhere else. No I/O, no flags.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from vmaptrain import augment, optim, rng, tta
from vmaptrain.data import normalize
from vmaptrain.poke import Poke, apply_poke


@struct.dataclass
class Hyper:
    """Per-run hyperparameters, float32 scalars (arrays in the state, so sweeps share a program)."""

    lr: jax.Array
    wd: jax.Array
    momentum: jax.Array
    label_smoothing: jax.Array


@struct.dataclass
class RunState:
    step: jax.Array  # int32: optimizer steps taken
    params: Any
    batch_stats: Any
    opt_state: Any
    hyper: Hyper
    order_key: jax.Array  # uint32[2] key data of the data-order stream
    aug_key: jax.Array  # uint32[2] key data of the augmentation stream
    poke: Poke
    diverged: jax.Array  # bool: loss became non-finite; the run is frozen from then on
    ema: Any = None  # lookahead's slow copy of (params, batch_stats), when used


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """Everything static about a study's training program (hashable: part of the jit cache key)."""

    model: nn.Module
    optimizer: str
    schedule: optim.Schedule
    batch_size: int
    steps_per_epoch: int
    augment: augment.AugmentConfig
    poke_path: str | None = None
    norm_lr_scale: float = 1.0  # lr multiple of BatchNorm parameters
    norm_wd_scale: float = 1.0  # weight-decay multiple of BatchNorm parameters
    limited: tuple = ()  # (parameter path, steps): trained for its first steps only
    lookahead: bool = False  # airbench's lookahead (see `lookahead`)
    tta: str = "none"  # test-time augmentation of eval_logits (vmaptrain.tta)

    def scales(self, params, batch_stats, step):
        return optim.parameter_scales(params, batch_stats, self.norm_lr_scale, self.norm_wd_scale, self.limited, step)


def _variables(state_or_params, batch_stats):
    return {"params": state_or_params, "batch_stats": batch_stats}


def init_run(spec: TrainSpec, init_key, order_key, aug_key, hyper: Hyper, poke: Poke, sample: jax.Array) -> RunState:
    """A fresh run from its init-stream key; `sample` is one input batch fixing shapes."""
    variables = spec.model.init(rng.wrap(init_key), sample, train=False)
    params = variables["params"]
    batch_stats = variables.get("batch_stats", {})
    tx = optim.make_optimizer(
        spec.optimizer, hyper.lr, hyper.wd, hyper.momentum, *spec.scales(params, batch_stats, jnp.int32(0))
    )
    return RunState(
        step=jnp.int32(0),
        params=params,
        batch_stats=batch_stats,
        opt_state=tx.init(params),
        hyper=hyper,
        order_key=jnp.asarray(order_key, jnp.uint32),
        aug_key=jnp.asarray(aug_key, jnp.uint32),
        poke=poke,
        diverged=jnp.bool_(False),
        ema=(params, batch_stats) if spec.lookahead else None,
    )


def epoch_permutation(order_key, epoch, num_examples: int) -> jax.Array:
    """This run's order of the training set in `epoch`."""
    key = jax.random.fold_in(rng.wrap(order_key), epoch)
    return jax.random.permutation(key, num_examples).astype(jnp.int32)


def load_batch(spec: TrainSpec, state: RunState, data: dict, permutation, epoch, step_in_epoch):
    """Gather this run's batch from the device-resident train set and augment it."""
    indices = jax.lax.dynamic_slice(permutation, (step_in_epoch * spec.batch_size,), (spec.batch_size,))
    images = data["x_train"][indices]
    labels = data["y_train"][indices]
    run_key = rng.wrap(state.aug_key)
    step_key = jax.random.fold_in(run_key, state.step)
    images = augment.augment_batch(step_key, run_key, images, indices, epoch, spec.augment, data["fill"])
    return normalize(images, data["mean"], data["std"]), labels


def _loss(spec: TrainSpec, params, batch_stats, images, labels, label_smoothing):
    logits, updates = spec.model.apply(_variables(params, batch_stats), images, train=True, mutable=["batch_stats"])
    num_classes = logits.shape[-1]
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)
    loss = optax.softmax_cross_entropy(logits, targets).mean()
    accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
    return loss, (updates["batch_stats"], accuracy)


def train_step(spec: TrainSpec, state: RunState, batch) -> tuple[RunState, dict]:
    """One optimizer step of one run. A run whose loss is non-finite is frozen and flagged."""
    images, labels = batch
    params = state.params
    if spec.poke_path is not None:
        params = apply_poke(params, state.poke, spec.poke_path, state.step)
    grad_fn = jax.value_and_grad(_loss, argnums=1, has_aux=True)
    (loss, (batch_stats, accuracy)), grads = grad_fn(
        spec, params, state.batch_stats, images, labels, state.hyper.label_smoothing
    )
    lr = state.hyper.lr * spec.schedule.factor(state.step)
    tx = optim.make_optimizer(
        spec.optimizer, lr, state.hyper.wd, state.hyper.momentum, *spec.scales(params, state.batch_stats, state.step)
    )
    updates, opt_state = tx.update(grads, state.opt_state, params)
    new = state.replace(
        step=state.step + 1, params=optax.apply_updates(params, updates), batch_stats=batch_stats, opt_state=opt_state
    )
    if spec.lookahead:
        new = lookahead(new, spec.schedule.total_steps)
    finite_params = jnp.all(jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(new.params)]))
    ok = jnp.isfinite(loss) & finite_params & ~state.diverged
    # Freeze a diverged run where it was; its step counter still advances with the study.
    kept = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, state)
    kept = kept.replace(step=state.step + 1, diverged=~ok)
    return kept, {"loss": loss, "accuracy": accuracy}


LOOKAHEAD_EVERY, LOOKAHEAD_BASE = 5, 0.95


def lookahead(state: RunState, total_steps: int) -> RunState:
    """airbench's lookahead, after the optimizer step that made `state.step` steps.

    Every 5th step the slow copy moves towards the weights, ema ← d·ema + (1 − d)·weights with
    d = 0.95⁵ · (step / total)³, and the weights jump to it; after the last step the weights
    become the slow copy. It covers the parameters and the BN running statistics.
    """
    step = state.step
    decay = LOOKAHEAD_BASE**LOOKAHEAD_EVERY * (step.astype(jnp.float32) / total_steps) ** 3
    due = step % LOOKAHEAD_EVERY == 0
    current = (state.params, state.batch_stats)
    ema = jax.tree.map(lambda e, w: jnp.where(due, decay * e + (1 - decay) * w, e), state.ema, current)
    jump = due | (step >= total_steps)
    params, batch_stats = jax.tree.map(lambda e, w: jnp.where(jump, e, w), ema, current)
    return state.replace(params=params, batch_stats=batch_stats, ema=ema)


def run_step(spec: TrainSpec, state: RunState, data: dict, permutation, epoch, step_in_epoch):
    """Batch loading + train step: the unit the parallel layer maps over runs."""
    batch = load_batch(spec, state, data, permutation, epoch, step_in_epoch)
    return train_step(spec, state, batch)


def eval_logits(spec: TrainSpec, state: RunState, images) -> jax.Array:
    """Logits of one run on an already-normalised batch, with its running BN statistics and the
    spec's test-time augmentation."""
    variables = _variables(state.params, state.batch_stats)
    if spec.tta == "none":
        return spec.model.apply(variables, images, train=False)
    return tta.tta_logits(lambda x: spec.model.apply(variables, x, train=False), images, spec.tta)
