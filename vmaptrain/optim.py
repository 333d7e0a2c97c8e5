"""Learning-rate schedules and optimizers whose hyperparameters are per-run arrays.

The optax transform is rebuilt inside every step from the run's own (lr, wd, momentum)
scalars, so one compiled program trains a whole sweep: the optimizer *state* layout does not
depend on those values, only the update does.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("sgd", "nesterov", "adam")
SCHEDULES = ("linear", "cosine", "constant", "piecewise")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Linear warmup from 0 over `warmup_steps`, then decay to 0 at `total_steps`.

    "piecewise" is airbench's: linear from `start` (× peak) at step 0 to 1 at `warmup_steps`,
    then linear to `end` at `total_steps`. With `cycles` > 1 the schedule restarts every
    ceil(total_steps / cycles) steps (snapshot ensembles: warmup + decay in every cycle).
    """

    kind: str
    total_steps: int
    warmup_steps: int = 0
    start: float = 0.0
    end: float = 0.0
    cycles: int = 1

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown lr schedule '{self.kind}'; choose from {', '.join(SCHEDULES)}")
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be ≥ 1, got {self.total_steps}")
        if not (isinstance(self.cycles, int) and 1 <= self.cycles <= self.total_steps):
            raise ValueError(
                f"schedule cycles must be an integer in [1, {self.total_steps}] (the total steps), got {self.cycles}"
            )
        if not 0 <= self.warmup_steps <= self.cycle_steps:
            raise ValueError(
                f"warmup_steps must lie in [0, {self.cycle_steps}] (steps per cycle), got {self.warmup_steps}"
            )

    @property
    def cycle_steps(self) -> int:
        return -(-self.total_steps // self.cycles)

    def factor(self, step):
        """Multiplier of the peak lr at `step` (0-based); traced-friendly."""
        if self.cycles > 1:
            step = jnp.asarray(step) % self.cycle_steps
            return dataclasses.replace(self, total_steps=self.cycle_steps, cycles=1).factor(step)
        step = jnp.asarray(step, jnp.float32)
        if self.kind == "piecewise":
            rise = self.start + (1.0 - self.start) * step / max(self.warmup_steps, 1)
            span = max(self.total_steps - self.warmup_steps, 1)
            fall = 1.0 + (self.end - 1.0) * (step - self.warmup_steps) / span
            return jnp.where(step < self.warmup_steps, rise, fall).astype(jnp.float32)
        warm = jnp.float32(max(self.warmup_steps, 1))
        warmup = jnp.minimum((step + 1.0) / warm, 1.0) if self.warmup_steps else jnp.float32(1.0)
        span = jnp.float32(max(self.total_steps - self.warmup_steps, 1))
        progress = jnp.clip((step - self.warmup_steps) / span, 0.0, 1.0)
        if self.kind == "linear":
            decay = 1.0 - progress
        elif self.kind == "cosine":
            decay = 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        else:
            decay = jnp.float32(1.0)
        return jnp.where(step < self.warmup_steps, warmup, decay)


def make_optimizer(name: str, lr, wd, momentum, lr_scales=None, wd_scales=None) -> optax.GradientTransformation:
    """PyTorch-style coupled weight decay (added to the gradient before momentum).

    For Adam, `momentum` is β1. `lr_scales` / `wd_scales` (trees like the params, or None) give
    each parameter its own multiple of lr and wd, as PyTorch parameter groups do.
    """
    if lr_scales is not None or wd_scales is not None:
        return _grouped(name, lr, wd, momentum, lr_scales, wd_scales)
    if name in ("sgd", "nesterov"):
        return optax.chain(
            optax.add_decayed_weights(wd),
            optax.sgd(lr, momentum=momentum, nesterov=name == "nesterov"),
        )
    if name == "adam":
        return optax.chain(
            optax.add_decayed_weights(wd),
            optax.scale_by_adam(b1=momentum),
            optax.scale_by_learning_rate(lr),
        )
    raise ValueError(f"unknown optimizer '{name}'; choose from {', '.join(OPTIMIZERS)}")


def _grouped(name, lr, wd, momentum, lr_scales, wd_scales) -> optax.GradientTransformation:
    def decay(updates, params):
        scales = wd_scales if wd_scales is not None else jax.tree.map(lambda _: 1.0, params)
        return jax.tree.map(lambda g, p, s: g + (wd * s) * p, updates, params, scales)

    def rate(updates, params):
        del params
        scales = lr_scales if lr_scales is not None else jax.tree.map(lambda _: 1.0, updates)
        return jax.tree.map(lambda u, s: -(lr * s) * u, updates, scales)

    if name in ("sgd", "nesterov"):
        inner = optax.trace(decay=momentum, nesterov=name == "nesterov")
    elif name == "adam":
        inner = optax.scale_by_adam(b1=momentum)
    else:
        raise ValueError(f"unknown optimizer '{name}'; choose from {', '.join(OPTIMIZERS)}")
    return optax.chain(optax.stateless(decay), inner, optax.stateless(rate))


def parameter_scales(params, batch_stats, norm_lr: float, norm_wd: float, limited: tuple, step):
    """Per-parameter (lr, wd) multipliers, or (None, None) when every parameter uses 1.

    BatchNorm parameters (those of a module that keeps batch statistics) get `norm_lr` and
    `norm_wd`; `limited` holds (path, steps): that parameter trains only for its first `steps`
    steps and is frozen after (lr multiplier 0, like PyTorch's requires_grad=False).
    """
    if norm_lr == 1.0 and norm_wd == 1.0 and not limited:
        return None, None
    norm_modules = {_path(path[:-1]) for path, _ in jax.tree_util.tree_flatten_with_path(batch_stats)[0]}
    until = dict(limited)

    def scales(path, _):
        name = _path(path)
        is_norm = _path(path[:-1]) in norm_modules
        lr = jnp.float32(norm_lr if is_norm else 1.0)
        if name in until:
            lr = jnp.where(step < until[name], lr, jnp.float32(0.0))
        return lr, jnp.float32(norm_wd if is_norm else 1.0)

    both = jax.tree_util.tree_map_with_path(scales, params)
    is_pair = lambda x: isinstance(x, tuple)
    return (jax.tree.map(lambda p: p[0], both, is_leaf=is_pair), jax.tree.map(lambda p: p[1], both, is_leaf=is_pair))


def _path(keys) -> str:
    return "/".join(str(getattr(k, "key", k)) for k in keys)
