"""The seed axis: per-run functions lifted to stacked runs, and per-run keys stacked.

A per-run function `f(run_args, *shared)` becomes a function of stacked runs (leading axis S,
the only place that axis is created or consumed inside a device); `placement` splits the same
axis over devices and processes. How the runs are batched is the `Strategy`.

Strategies compute the same function; "unrolled"/"serial" (with or without "+eigen") are
bitwise independent of S, the other forms agree to float rounding (tests/test_parallel.py,
tests/test_strategies.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vmaptrain import rng
from vmaptrain.engine import conv_batching
from vmaptrain.engine.strategy import DIRECT_PATCH_LIMIT, Strategy


def conv_routing(strategy: Strategy) -> conv_batching.Routing | None:
    """The convolution routing a strategy's options ask for; None: flax's own convolutions."""
    if not strategy.routed:
        return None
    across = "per_run" if strategy.has("perrun") else "bmm" if strategy.has("bmm") else "grouped"
    return conv_batching.Routing(
        per_run=f"direct:{DIRECT_PATCH_LIMIT}" if strategy.has("direct") else "xla",
        across_runs=across,
        dtype="bfloat16" if strategy.has("bf16") else None,
    )


def map_runs(fn, strategy: Strategy | str):
    """Lift `fn(per_run, *shared)` to `(stacked, *shared)`; `per_run` is any pytree of runs."""
    strategy = Strategy.parse(strategy)
    strategy.chunk_size(1)  # refuses an unresolved "auto"
    route = conv_routing(strategy)

    def mapped(stacked, *shared):
        with conv_batching.routing(route):
            return _mapped(stacked, *shared)

    def _mapped(stacked, *shared):
        num_runs = jax.tree.leaves(stacked)[0].shape[0]
        size = strategy.chunk_size(num_runs)
        if strategy.form == "map":
            # lax.map vmaps batch_size runs per iteration (the remainder in a separate vmap).
            return jax.lax.map(lambda run: fn(run, *shared), stacked, batch_size=None if size == 1 else size)
        # Traced once, called once per run or chunk: tracing and lowering do not grow with the
        # runs. XLA inlines the calls, so the compiled program (and every bit) is the same.
        traced_once = jax.jit(fn if size == 1 else jax.vmap(fn, in_axes=(0,) + (None,) * len(shared)))
        outs = []
        for start in range(0, num_runs, size):
            part = jax.tree.map(lambda a: a[start : start + size], stacked)
            if strategy.form == "serial" and outs:
                # A data dependence that is no computation: this run starts after the last ends.
                part, outs[-1] = jax.lax.optimization_barrier((part, outs[-1]))
            if size == 1:
                single = traced_once(jax.tree.map(lambda a: a[0], part), *shared)
                outs.append(jax.tree.map(lambda a: a[None], single))
            else:
                outs.append(traced_once(part, *shared))
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


def stream_keys(study_seed: int, seeds: list[rng.RunSeeds], stream: str) -> np.ndarray:
    """Raw uint32 key data [runs, 2] of one stream for many runs (orbax- and vmap-friendly)."""
    ints = jnp.asarray([getattr(s, stream) for s in seeds], jnp.uint32)
    return np.asarray(_stream_keys(study_seed, ints, rng.STREAM_TAG[stream]), np.uint32)


@jax.jit
def _stream_keys(study_seed, seeds, tag):
    # fold_in is elementwise threefry, so vmapping it gives the same bits as one call per run.
    derive = lambda s: jax.random.key_data(rng.stream_key_traced(study_seed, s, tag))
    return jax.vmap(derive)(seeds)
