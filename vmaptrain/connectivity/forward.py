"""One forward pass of a registry model, instrumented with `nn.intercept_methods`.

The models stay untouched; the interceptor sees every submodule call and can

* record the output of chosen modules (activation matching),
* make BatchNorm normalise with the batch's own statistics and return them (the BN reset
  pass: train-mode BN without Flax's EMA, so the caller can take a cumulative average),
* correct chosen conv/dense outputs (REPAIR): either `measure` (normalise with batch
  statistics, then apply the goal affine, as REPAIR's measuring pass does) or `apply`
  (a fixed per-channel affine at evaluation),
* return per-channel mean and mean-square of chosen outputs after any correction
  (the variance-collapse statistic and REPAIR's checks).

Everything is a pure function of (variables, x); records travel back as return values of
the same trace, so the pass is jit- and vmap-safe.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

EPS = 1e-5


def _channel_stats(y):
    axes = tuple(range(y.ndim - 1))
    mean = jnp.mean(y, axis=axes)
    # Two-pass variance: E[y²]−E[y]² loses digits when |mean| ≫ std.
    var = jnp.mean(jnp.square(y - mean), axis=axes)
    return mean, var


def forward(model, variables, x, *, record=(), stats=(), bn_batch=False, measure=None, correct=None):
    """logits, {'outputs': {path: y}, 'stats': {path: (mean, var)}, 'bn': {path: (mean, var)},
    'raw': {path: (mean, var)}}.

    `measure`: {path: (mu_goal, sigma_goal)}; `correct`: {path: (scale, shift)}. 'raw' holds the
    batch statistics of measured outputs before correction.
    """
    record, stats = frozenset(record), frozenset(stats)
    measure, correct = measure or {}, correct or {}
    out = {"outputs": {}, "stats": {}, "bn": {}, "raw": {}}

    def interceptor(next_fun, args, kwargs, context):
        if context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        module = context.module
        path = "/".join(module.path)
        if bn_batch and isinstance(module, nn.BatchNorm):
            x_in = args[0]
            mean, var = _channel_stats(x_in)
            out["bn"][path] = (mean, var)
            y = (x_in - mean) * jax.lax.rsqrt(var + module.epsilon)
            params = module.variables["params"]
            y = y * params["scale"] + params["bias"]
        else:
            y = next_fun(*args, **kwargs)
        if path in measure:
            mean, var = _channel_stats(y)
            out["raw"][path] = (mean, var)
            mu_goal, sigma_goal = measure[path]
            y = (y - mean) * jax.lax.rsqrt(var + EPS) * sigma_goal + mu_goal
        elif path in correct:
            scale, shift = correct[path]
            y = y * scale + shift
        if path in record:
            out["outputs"][path] = y
        if path in stats:
            out["stats"][path] = _channel_stats(y)
        return y

    with nn.intercept_methods(interceptor):
        logits = model.apply(variables, x, train=False)
    return logits, out


def batch_metrics(logits, labels):
    """Summed cross-entropy and number correct over a batch (the caller divides)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32))
    loss = -jnp.take_along_axis(logp, labels[:, None], axis=1)[:, 0]
    return jnp.sum(loss), jnp.sum(jnp.argmax(logits, -1) == labels)
