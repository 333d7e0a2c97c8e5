"""A "poke": multiply one chosen weight of a run by a factor at a chosen step.

Summers & Dinneen show a single tiny change (×1.001, even one ULP) at initialisation makes a
run diverge as far as a different seed does. The poked parameter (a path like 'conv0/kernel')
is fixed per study; the flat index, the step (-1 = never) and the factor are per run.
"""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Poke:
    step: jax.Array  # int32; the step at whose start the weight is scaled; -1 = never
    index: jax.Array  # int32; flat index into the poked parameter
    factor: jax.Array  # float32


def never() -> Poke:
    return Poke(step=jnp.int32(-1), index=jnp.int32(0), factor=jnp.float32(1.0))


def param_paths(params) -> list[str]:
    return ["/".join(path) for path in flax.traverse_util.flatten_dict(params)]


def check_path(params, path: str) -> int:
    """Validate `path` and return the parameter's size."""
    flat = flax.traverse_util.flatten_dict(params)
    key = tuple(path.split("/"))
    if key not in flat:
        raise ValueError(f"poke parameter '{path}' not in the model; it has: {', '.join(param_paths(params))}")
    return int(flat[key].size)


def apply_poke(params, poke: Poke, path: str, step):
    """Scale element `poke.index` of parameter `path` by `poke.factor` iff `step == poke.step`."""
    flat = flax.traverse_util.flatten_dict(params)
    key = tuple(path.split("/"))
    leaf = flat[key]
    hit = (jnp.arange(leaf.size) == poke.index) & (step == poke.step)
    scaled = jnp.where(hit, leaf.reshape(-1) * poke.factor.astype(leaf.dtype), leaf.reshape(-1))
    flat = dict(flat)
    flat[key] = scaled.reshape(leaf.shape)
    return flax.traverse_util.unflatten_dict(flat)
