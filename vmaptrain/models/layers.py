"""Building blocks shared by the registry's networks."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from vmaptrain.models import conventions

# torchvision's ResNet conv init, kaiming_normal_(mode="fan_out", nonlinearity="relu"): N(0, 2/fan_out).
kaiming_fan_out = conventions.variance_scaling(2.0, "fan_out", "normal")


def scaled(channels: int, width: float) -> int:
    """Channel count under a width multiplier (never below 1)."""
    return max(1, int(round(channels * width)))


def conv(
    x: jnp.ndarray,
    features: int,
    kernel: int,
    convention: str,
    name: str,
    *,
    stride: int = 1,
    padding="SAME",
    use_bias: bool = False,
    kernel_init=None,
) -> jnp.ndarray:
    """A square conv applied to `x` [B, H, W, C] (inside a compact method), initialised by
    `convention`; `kernel_init` replaces the convention's kernel initializer where the original
    chose its own. The bias bound uses the kernel's fan_in, kernel² · C, as PyTorch's does."""
    fan_in = kernel * kernel * x.shape[-1]
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        padding=padding,
        use_bias=use_bias,
        kernel_init=kernel_init or conventions.kernel_init(convention),
        bias_init=conventions.bias_init(convention, fan_in),
        name=name,
    )(x)


def dense(x: jnp.ndarray, features: int, convention: str, name: str, *, use_bias: bool = True) -> jnp.ndarray:
    """A dense layer applied to `x` [B, C] (inside a compact method), initialised by `convention`."""
    return nn.Dense(
        features,
        use_bias=use_bias,
        kernel_init=conventions.kernel_init(convention),
        bias_init=conventions.bias_init(convention, x.shape[-1]),
        name=name,
    )(x)


def _pool_with_winner(x: jnp.ndarray):
    """2×2 max of an even-sized [B, H, W, C] and, per window, which element (0–3, row-major)
    holds it: the first maximum, a NaN wins (PyTorch's rule)."""
    b, h, w, c = x.shape
    windows = x.reshape(b, h // 2, 2, w // 2, 2, c)
    parts = [windows[:, :, p, :, q, :] for p in (0, 1) for q in (0, 1)]
    y, winner = parts[0], jnp.zeros(parts[0].shape, jnp.int8)
    for j, part in enumerate(parts[1:], start=1):
        better = (part > y) | jnp.isnan(part)
        y, winner = jnp.where(better, part, y), jnp.where(better, jnp.int8(j), winner)
    return y, winner


@jax.custom_vjp
def _even_max_pool2(x: jnp.ndarray) -> jnp.ndarray:
    return _pool_with_winner(x)[0]


def _even_max_pool2_forward(x):
    return _pool_with_winner(x)


def _even_max_pool2_backward(winner, dy):
    b, h2, w2, c = winner.shape
    position = jax.lax.broadcasted_iota(jnp.int8, (1, 1, 2, 1, 2, 1), 2) * 2 + jax.lax.broadcasted_iota(
        jnp.int8, (1, 1, 2, 1, 2, 1), 4
    )
    hit = winner[:, :, None, :, None, :] == position
    dx = jnp.where(hit, dy[:, :, None, :, None, :], jnp.zeros((), dy.dtype))
    return (dx.reshape(b, 2 * h2, 2 * w2, c),)


_even_max_pool2.defvjp(_even_max_pool2_forward, _even_max_pool2_backward)


def max_pool2(x: jnp.ndarray) -> jnp.ndarray:
    """2×2 max pool, stride 2, floor semantics (odd trailing rows/columns are dropped).

    The gradient goes to the window's first maximum, recorded in the forward pass as an int8
    index (PyTorch routes the same way). Autodiff of a max instead rebuilds the hit mask in the
    backward pass (compare, count the hits per window, divide, broadcast): three full-size passes
    over the pooled activations, the costliest elementwise work of the reference net's 28×28
    layer on XLA:CPU (BUILD_NOTES.md "Measured": an 8-run training step 6–11% faster with the
    index). The backward never compares floats again: a hand-written backward that did
    (x == max) once met activations that XLA:CPU had rounded differently in two fusions, found
    no hit in some windows and divided by zero; here every window routes its gradient to exactly
    one element.
    """
    h, w = x.shape[1:3]
    return _even_max_pool2(x[:, : h // 2 * 2, : w // 2 * 2, :])


def batch_norm(
    train: bool,
    name: str,
    momentum: float = 0.9,
    scale_init=nn.initializers.ones,
    epsilon: float = 1e-5,
    use_scale: bool = True,
):
    """BatchNorm whose statistics are always this run's own: no axis_name, ever.

    `momentum` is Flax's keep-rate (PyTorch momentum 0.1 ≙ 0.9 here).
    """
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=momentum,
        epsilon=epsilon,
        use_scale=use_scale,
        scale_init=scale_init,
        name=name,
    )
