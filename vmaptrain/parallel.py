"""The only module that knows about the seed axis.

A per-run function `f(run_args, *shared)` becomes a function of stacked runs (leading axis S).
How the runs are batched is a strategy, chosen per device because it changes speed a lot. A
strategy is a batching form optionally followed by convolution options, `form[+option]…`:

- "vmap": one `jax.vmap` over all S runs. Convolutions become grouped convolutions
  (feature_group_count = S), slow on XLA:CPU (cpu-measurements.md), often fine on GPU.
- "unrolled": one dense per-run computation per run, all unrolled in one jitted program. On
  XLA:CPU as fast as a Python loop of single-run steps, without its dispatch; and every run's
  numerics are those of a single-run program, so results do not depend on the study size.
- "serial": "unrolled", with each run's inputs held back (`optimization_barrier`) until the
  previous run's outputs exist, so XLA runs the runs one after another instead of
  interleaving them (a single run's working set; bitwise "unrolled").
- "chunk:K": runs in chunks of K, vmapped inside a chunk and unrolled across chunks.
- "map" / "map:K": `lax.map` over runs (K runs vmapped per iteration). One loop body, so compile
  time does not grow with S; GPU only in practice (XLA:CPU convolutions inside a loop are ~80×
  slower).

Options (`vmaptrain.conv_batching`): "+direct" computes convolutions with a tiny patch
(kh·kw·C_in ≤ 27: RGB or grey input layers) as shifted multiply-adds; "+perrun" makes every
vmapped convolution one dense convolution per run; "+bmm" batches vmapped convolutions as
im2col batched matmuls; "+bf16" computes convolutions in bfloat16 (GPU; opt-in, never chosen
by "auto" because it changes the numerics); "+eigen" is a compile option, not a routing: on CPU
XLA runs convolutions with its own (Eigen) kernels instead of YNNPACK (`compile_options`),
faster for some models and slower for others, so "auto" times both.

"auto" is not a strategy of this module: `vmaptrain.autotune` resolves it to one by timing.

Importing this module also tells glibc malloc to keep freed memory (`vmaptrain.hostmem`): XLA:CPU
otherwise page-faults every step's scratch buffers in again, ~40 % of a step's CPU time.

Strategies compute the same function; "unrolled"/"serial" (with or without "+eigen") are
bitwise independent of S, the other forms agree to float rounding (tests/test_parallel.py,
tests/test_strategies.py).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp

from vmaptrain import hostmem

# XLA:CPU scratch buffers otherwise cost ~40 % of a step in page faults (hostmem.py).
hostmem.keep_freed_memory()

FORMS = ("vmap", "unrolled", "serial", "chunk:K", "map", "map:K")
OPTIONS = ("direct", "perrun", "bmm", "bf16", "eigen")
DIRECT_PATCH_LIMIT = 27
STRATEGY_PATTERN = re.compile(
    r"^(vmap|unrolled|serial|chunk:[1-9][0-9]*|map|map:[1-9][0-9]*)"
    rf"((\+({'|'.join(OPTIONS)}))*)$"
)


def validate_strategy(strategy: str) -> str:
    """`strategy` if it names a strategy (or "auto"); a ValueError saying what is allowed if not."""
    if strategy == "auto":
        return strategy
    match = STRATEGY_PATTERN.match(strategy) if isinstance(strategy, str) else None
    options = match.group(2).split("+")[1:] if match else []
    if not match or len(set(options)) != len(options) or {"perrun", "bmm"} <= set(options):
        raise ValueError(
            f"unknown strategy '{strategy}'; choose auto, or vmap, unrolled, serial, chunk:K, "
            f"map or map:K (K ≥ 1), optionally followed by +direct, +perrun or +bmm "
            f"(not both), +bf16 and +eigen"
        )
    return strategy


def parse(strategy: str) -> tuple[str, tuple[str, ...]]:
    """ "chunk:4+direct" → ("chunk:4", ("direct",))."""
    if validate_strategy(strategy) == "auto":
        raise ValueError("strategy 'auto' must be resolved (vmaptrain.autotune) before programs are built")
    form, *options = strategy.split("+")
    return form, tuple(options)


def routing_of(strategy: str):
    """The `conv_batching.Routing` a strategy's options ask for; None: flax's own convolutions."""
    options = set(parse(strategy)[1]) - {"eigen"}  # "eigen" is a compile option
    if not options:
        return None
    from vmaptrain import conv_batching  # local: config imports this module without flax

    across = "per_run" if "perrun" in options else "bmm" if "bmm" in options else "grouped"
    return conv_batching.Routing(
        per_run=f"direct:{DIRECT_PATCH_LIMIT}" if "direct" in options else "xla",
        across_runs=across,
        dtype="bfloat16" if "bf16" in options else None,
    )


def chunk_size(strategy: str, num_runs: int) -> int:
    """Runs per vmapped block (1: each run is its own dense computation)."""
    form, _ = parse(strategy)
    if form == "vmap":
        return num_runs
    if form in ("unrolled", "serial", "map"):
        return 1
    return min(int(form.split(":")[1]), num_runs)


def map_runs(fn, strategy: str):
    """Lift `fn(per_run, *shared)` to `(stacked, *shared)`; `per_run` is any pytree of runs."""
    form, _ = parse(strategy)
    route = routing_of(strategy)

    def mapped(stacked, *shared):
        if route is None:
            return _mapped(stacked, *shared)
        from vmaptrain import conv_batching

        with conv_batching.routing(route):
            return _mapped(stacked, *shared)

    def _mapped(stacked, *shared):
        num_runs = jax.tree.leaves(stacked)[0].shape[0]
        size = chunk_size(strategy, num_runs)
        if form.startswith("map"):
            # lax.map vmaps batch_size runs per iteration (the remainder in a separate vmap).
            return jax.lax.map(lambda run: fn(run, *shared), stacked, batch_size=None if size == 1 else size)
        outs = []
        for start in range(0, num_runs, size):
            part = jax.tree.map(lambda a: a[start : start + size], stacked)
            if form == "serial" and outs:
                # A data dependence that is no computation: this run starts after the last ends.
                part, outs[-1] = jax.lax.optimization_barrier((part, outs[-1]))
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
