"""Frankle et al.'s instability analysis: how early does SGD noise stop mattering?

Train one trunk to step k, spawn children that share its whole state (weights, BN
statistics, optimizer momentum, step counter and so the LR schedule) and differ only in
SGD noise — their data order, their augmentation, or a one-weight poke at step k — train
each child to the end T, then measure the barrier on the linear path between children
(no alignment: they share the trunk). Instability vs k: large at k = 0, ≈ 0 once stable.

A child keeps the trunk's position in the epoch: from step k it draws its remaining batches
of that epoch from its own permutation, then continues with its own order.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from vmaptrain import poke, rng
from vmaptrain.connectivity.errors import ConnectivityError
from vmaptrain.engine import placement, seed_axis
from vmaptrain.engine.programs import programs_for
from vmaptrain.engine.trainer import GroupTrainer
from vmaptrain.specs import build_spec, check_model

NOISE = ("order", "aug", "order,aug", "poke")
CHILD_SEED_BASE = 1_000_003  # child c's stream seed: never a seed a study's run would use


def _spawn(trunk, config, children: int, noise: str, k: int):
    """`children` copies of the (single-run) trunk state that differ only in `noise`."""
    state = jax.tree.map(lambda a: np.repeat(np.asarray(a), children, axis=0), trunk)
    if noise == "poke":
        pokes = poke.Poke(
            step=np.asarray([-1] + [k] * (children - 1), np.int32),
            index=np.maximum(np.arange(children, dtype=np.int32) - 1, 0),
            factor=np.full(children, config.poke_factor, np.float32),
        )
        return state.replace(poke=pokes)
    seeds = [rng.RunSeeds(init=0, order=CHILD_SEED_BASE + c, aug=CHILD_SEED_BASE + c) for c in range(children)]
    if "order" in noise:
        state = state.replace(order_key=seed_axis.stream_keys(config.seed, seeds, "order"))
    if "aug" in noise:
        state = state.replace(aug_key=seed_axis.stream_keys(config.seed, seeds, "aug"))
    return state


def spawn_children(
    config, data, spawn_steps, *, children: int = 2, noise: str = "order", strategy: str | None = None
) -> tuple:
    """Train the trunk once; for each k in `spawn_steps` spawn and finish `children` children.

    Returns (spec, {k: final children RunState (host arrays, leading child axis)}).
    """
    if noise not in NOISE:
        raise ConnectivityError(f"unknown spawn noise '{noise}'; choose from {', '.join(NOISE)}")
    if children < 2:
        raise ConnectivityError(f"instability needs at least 2 children per spawn step, got {children}")
    spec = build_spec(config, data)
    if noise == "poke":
        spec = dataclasses.replace(spec, poke_path=config.poke_param or spec.model.default_poke_param)
    check_model(spec, data)
    aug = spec.augment
    if noise == "aug" and aug.flip == "none" and not aug.translate and not aug.cutout:
        raise ConnectivityError(
            "spawn noise 'aug' needs augmentation (flip, translate or cutout); "
            "without it the children would be identical"
        )
    total = config.epochs * spec.steps_per_epoch
    steps = sorted(set(int(k) for k in spawn_steps))
    if not steps or steps[0] < 0 or steps[-1] > total:
        raise ConnectivityError(f"spawn steps must lie in [0, {total}] (the study's total steps), got {spawn_steps}")
    # The study's own compiled programs (shared with a study of `children` runs and this spec).
    programs = programs_for(
        spec, config.strategy if strategy is None else strategy, tuple(placement.seed_mesh().devices.flat)
    )
    # The trunk is trained as `children` identical copies, so trunk and children share one
    # compiled step (the copies cost compute, not compilation).
    trainer = GroupTrainer(programs, dataclasses.replace(config, num_seeds=children, vary="none"), data)
    trunk = trainer.init([0] * children)
    done, out = 0, {}
    for k in steps:
        trunk = trainer.train(trunk, done, k)
        done = k
        snapshot = jax.device_get(trunk.run)  # the step donates its input: keep a host copy
        first = jax.tree.map(lambda a: a[:1], snapshot)
        kids = trainer.start(trainer.place(_spawn(first, config, children, noise, k)), step=k)
        out[k] = jax.device_get(trainer.train(kids, k, total).run)
        trunk = trunk.replace(run=trainer.place(snapshot), perm_epoch=-1)
    return spec, out
