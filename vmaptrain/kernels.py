"""Hand-written gradients for layers whose autodiff form is slow on XLA:CPU.

`pool_with_custom_grad` returns exactly what `reshape + max` returns and its gradient is the
one autodiff gives (ties share the gradient equally: g / count at every maximal position), only
laid out so that XLA:CPU emits one cheap fusion: the input is viewed as [B·H/2, 2, W/2, 2·C],
where the horizontal pair of a window is two contiguous channel blocks. Autodiff of the 6-D
`reshape + max` costs ~2.5× more on the 28×28 layer of the reference net (cpu-measurements.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _pool(x):
    b, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    x = x[:, : 2 * h2, : 2 * w2, :]
    return x.reshape(b, h2, 2, w2, 2, c).max(axis=(2, 4))


def max_pool2(x):
    """2×2 max pool, stride 2, floor semantics (odd trailing rows/columns are dropped).

    Inside a `conv_batching.routing` block (a strategy with options) with the hand-written
    gradient; elsewhere plain autodiff. The gradients are equal operation for operation, but
    moving the fusion boundaries lets XLA:CPU contract different multiply-adds, so whole
    training steps differ in the last bits: the plain strategies keep autodiff's bits.
    """
    from vmaptrain import conv_batching  # local: conv_batching imports flax

    return pool_with_custom_grad(x) if conv_batching.current() is not None else _pool(x)


@jax.custom_vjp
def pool_with_custom_grad(x):
    return _pool(x)


def _pool_fwd(x):
    y = _pool(x)
    return y, (x, y)


def _pool_bwd(residuals, g):
    x, y = residuals
    b, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    rows = x[:, : 2 * h2, : 2 * w2, :].reshape(b * h2, 2, w2, 2 * c)
    wide = lambda a: jnp.concatenate([a, a], axis=-1).reshape(b * h2, 1, w2, 2 * c)
    hit = (rows == wide(y)).astype(x.dtype)
    pair = hit.sum(axis=1)
    count = (pair[..., :c] + pair[..., c:]).reshape(b, h2, w2, c)
    # Same operations, same order as the transpose of jax's max-reduction JVP rule.
    share = wide(g / count)
    dx = (share * hit).reshape(b, 2 * h2, 2 * w2, c)
    if (2 * h2, 2 * w2) != (h, w):
        dx = jnp.pad(dx, ((0, 0), (0, h - 2 * h2), (0, w - 2 * w2), (0, 0)))
    return (dx,)


pool_with_custom_grad.defvjp(_pool_fwd, _pool_bwd)
