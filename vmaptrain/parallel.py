"""The only module that knows about the seed axis.

A per-run function `f(run_args, *shared)` becomes a function of stacked runs (leading axis S).
How the runs are batched is a strategy, chosen per device because it changes speed a lot:

- "vmap": one `jax.vmap` over all S runs. Convolutions become grouped convolutions
  (feature_group_count = S), slow on XLA:CPU (cpu-measurements.md), often fine on GPU.
- "unrolled": one dense per-run computation per run, all unrolled in one jitted program. On
  XLA:CPU as fast as a Python loop of single-run steps, without its dispatch; and every run's
  numerics are those of a single-run program, so results do not depend on the study size.
- "chunk:K": runs in chunks of K, vmapped inside a chunk and unrolled across chunks.

Strategies compute the same function; "unrolled" is bitwise independent of S, the vmapped
forms agree to float rounding (tests document how closely).
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp

STRATEGY_PATTERN = re.compile(r"^(vmap|unrolled|chunk:[1-9][0-9]*)$")


def validate_strategy(strategy: str) -> str:
    if not STRATEGY_PATTERN.match(strategy):
        raise ValueError(f"unknown strategy '{strategy}'; choose vmap, unrolled or chunk:K (K ≥ 1)")
    return strategy


def chunk_size(strategy: str, num_runs: int) -> int:
    validate_strategy(strategy)
    if strategy == "vmap":
        return num_runs
    if strategy == "unrolled":
        return 1
    return min(int(strategy.split(":")[1]), num_runs)


def map_runs(fn, strategy: str):
    """Lift `fn(per_run, *shared)` to `(stacked, *shared)`; `per_run` is any pytree of runs."""

    def mapped(stacked, *shared):
        num_runs = jax.tree.leaves(stacked)[0].shape[0]
        size = chunk_size(strategy, num_runs)
        outs = []
        for start in range(0, num_runs, size):
            part = jax.tree.map(lambda a: a[start:start + size], stacked)
            if size == 1:
                single = fn(jax.tree.map(lambda a: a[0], part), *shared)
                outs.append(jax.tree.map(lambda a: a[None], single))
            else:
                in_axes = (0,) + (None,) * len(shared)
                outs.append(jax.vmap(fn, in_axes=in_axes)(part, *shared))
        if len(outs) == 1:
            return outs[0]
        return jax.tree.map(lambda *parts: jnp.concatenate(parts), *outs)

    return mapped


def stack(trees):
    """List of per-run pytrees → one pytree with a leading run axis."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def unstack(tree, index: int):
    """Run `index` of a stacked pytree."""
    return jax.tree.map(lambda a: a[index], tree)


class StackedPrograms:
    """The jitted programs of a study over stacked runs, compiled once per (spec, strategy)."""

    def __init__(self, spec, strategy: str):
        from vmaptrain import train  # local: parallel is importable without flax/optax users

        self.spec = spec
        self.strategy = validate_strategy(strategy)

        def init_one(run, sample):
            init_key, order_key, aug_key, hyper, poke = run
            return train.init_run(spec, init_key, order_key, aug_key, hyper, poke, sample)

        def step_one(run, data, epoch, step_in_epoch):
            state, permutation = run
            return train.run_step(spec, state, data, permutation, epoch, step_in_epoch)

        def eval_one(state, images):
            return train.eval_logits(spec, state, images)

        # Init and permutations hold no convolution worth batching differently: plain vmap,
        # which draws exactly the same random bits as one run at a time.
        self.init = jax.jit(jax.vmap(init_one, in_axes=(0, None)))
        self.permutations = jax.jit(
            jax.vmap(train.epoch_permutation, in_axes=(0, None, None)), static_argnums=2)
        step_all = map_runs(step_one, strategy)
        # Only the state is donated: the epoch's permutations are reused by every step.
        self.step = jax.jit(
            lambda state, permutations, data, epoch, k: step_all((state, permutations), data, epoch, k),
            donate_argnums=0)
        self.eval = jax.jit(map_runs(eval_one, strategy))


@functools.lru_cache(maxsize=32)
def programs_for(spec, strategy: str) -> StackedPrograms:
    """Shared compiled programs: studies with the same spec and strategy reuse one compilation."""
    return StackedPrograms(spec, strategy)
