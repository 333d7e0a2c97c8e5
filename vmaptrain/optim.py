"""Learning-rate schedules and optimizers whose hyperparameters are per-run arrays.

The optax transform is rebuilt inside every step from the run's own (lr, wd, momentum)
scalars, so one compiled program trains a whole sweep: the optimizer *state* layout does not
depend on those values, only the update does.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import optax

OPTIMIZERS = ("sgd", "nesterov", "adam")
SCHEDULES = ("linear", "cosine", "constant")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Linear warmup from 0 over `warmup_steps`, then decay to 0 at `total_steps`."""

    kind: str
    total_steps: int
    warmup_steps: int = 0

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown lr schedule '{self.kind}'; choose from {', '.join(SCHEDULES)}")
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be ≥ 1, got {self.total_steps}")
        if not 0 <= self.warmup_steps <= self.total_steps:
            raise ValueError(f"warmup_steps must lie in [0, {self.total_steps}], got {self.warmup_steps}")

    def factor(self, step):
        """Multiplier of the peak lr at `step` (0-based); traced-friendly."""
        step = jnp.asarray(step, jnp.float32)
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


def make_optimizer(name: str, lr, wd, momentum) -> optax.GradientTransformation:
    """PyTorch-style coupled weight decay (added to the gradient before momentum).

    For Adam, `momentum` is β1.
    """
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
