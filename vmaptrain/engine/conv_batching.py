"""How a model's 2-D convolutions are computed, per run and across stacked runs.

Three independent choices, fixed at trace time by `routing(Routing(...))`:

- per run (`per_run`): "xla" (one `lax.conv_general_dilated`, what flax emits); "direct" (a sum
  of kh·kw·C_in broadcast multiply-adds of shifted inputs: for the 1-channel first layer of the
  reference net XLA:CPU runs it ~15× faster than its convolution, and its weight gradient is a
  plain reduction); "im2col" (patches × kernel matrix, one GEMM). "direct:K" / "im2col:K" apply
  the method only where the patch length kh·kw·C_in is at most K, and XLA elsewhere.
- across runs, when the per-run step is `jax.vmap`ped (`across_runs`): "grouped" (jax's own
  rule: one grouped convolution, feature_group_count = S), "per_run" (one dense convolution per
  run, unrolled inside the vmapped program), "bmm" (im2col with the run axis as the batch
  dimension of one batched matmul).
- `dtype`: "bfloat16" computes convolutions in bf16 (GPU tensor cores); parameters, gradients
  seen by the optimizer and everything else stay float32.

Mechanism (BUILD_NOTES.md "Measured"): an "xla"/"im2col" convolution is a `jax.custom_vjp` whose
forward, input gradient and weight gradient are each `jax.custom_batching.custom_vmap`
functions, so the vmap rule picks how runs are batched while reverse-mode autodiff still works
(custom_vmap alone cannot be linearised). A "direct" convolution is elementwise arithmetic that
vmap batches without any grouped convolution, so it is left to plain autodiff. Models are not
edited: `routing` intercepts every `flax.linen.Conv` call (`nn.intercept_methods`) and computes
it here from the same parameters; a convolution this module does not handle (dilation, groups,
masks, not 2-D) falls through to flax unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

PER_RUN_METHODS = ("xla", "direct", "im2col")
ACROSS_RUN_METHODS = ("grouped", "per_run", "bmm")
DTYPES = (None, "bfloat16")
_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


@dataclasses.dataclass(frozen=True)
class Routing:
    """Static conv choices of one traced program (hashable)."""

    per_run: str = "xla"  # "xla" | "direct[:K]" | "im2col[:K]"
    across_runs: str = "grouped"  # "grouped" | "per_run" | "bmm"
    dtype: str | None = None  # None (the parameters' dtype) | "bfloat16"

    def __post_init__(self):
        base, _, limit = self.per_run.partition(":")
        if base not in PER_RUN_METHODS or (limit and (base == "xla" or not limit.isdigit())):
            raise ValueError(
                f"conv routing: per-run method must be xla, direct[:K] or im2col[:K], got {self.per_run!r}"
            )
        if self.across_runs not in ACROSS_RUN_METHODS:
            raise ValueError(
                f"conv routing: across-run method must be one of {', '.join(ACROSS_RUN_METHODS)}, "
                f"got {self.across_runs!r}"
            )
        if self.dtype not in DTYPES:
            raise ValueError(f"conv routing: dtype must be None or bfloat16, got {self.dtype!r}")

    def method_for(self, patch_length: int) -> str:
        base, _, limit = self.per_run.partition(":")
        if limit and patch_length > int(limit):
            return "xla"
        return base


# ---------------------------------------------------------------------------------------------
# One run.


def _xla_conv(x, w, strides, padding):
    return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=_DIMENSIONS)


def _taps(x, kernel_hw, strides, padding):
    """The kh·kw shifted (and strided) views of the padded input, each [B, Ho, Wo, C]."""
    (kh, kw), (sh, sw) = kernel_hw, strides
    x = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
    b, h, w, c = x.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    return [
        lax.slice(x, (0, i, j, 0), (b, i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, c), (1, sh, sw, 1))
        for i in range(kh)
        for j in range(kw)
    ]


def patches(x, kernel_hw, strides, padding):
    """[B, H, W, C] → [B, Ho, Wo, kh·kw·C], ordered (i, j, c) like an HWIO kernel reshaped."""
    return jnp.concatenate(_taps(x, kernel_hw, strides, padding), axis=-1)


def direct_conv(x, w, strides, padding):
    """Σ over taps and input channels of shifted input × kernel row: no convolution op at all."""
    kh, kw, c_in, _ = w.shape
    out = None
    for t, tap in enumerate(_taps(x, (kh, kw), strides, padding)):
        i, j = divmod(t, kw)
        for c in range(c_in):
            term = tap[..., c : c + 1] * w[i, j, c]
            out = term if out is None else out + term
    return out


def _forward(method, strides, padding, x, w):
    if method == "xla":
        return _xla_conv(x, w, strides, padding)
    if method == "direct":
        return direct_conv(x, w, strides, padding)
    kh, kw, c_in, c_out = w.shape
    cols = patches(x, (kh, kw), strides, padding)
    return jnp.einsum("bhwk,ko->bhwo", cols, w.reshape(kh * kw * c_in, c_out))


def _input_grad(strides, padding, dy, w, x_shape):
    # XLA's transposed convolution (dense on every backend); dead code when x needs no gradient.
    _, vjp = jax.vjp(lambda x: _xla_conv(x, w, strides, padding), jnp.zeros(x_shape, dy.dtype))
    return vjp(dy)[0]


def _weight_grad(method, strides, padding, x, dy, w_shape):
    if method == "xla":
        _, vjp = jax.vjp(lambda w: _xla_conv(x, w, strides, padding), jnp.zeros(w_shape, x.dtype))
        return vjp(dy)[0]
    # "im2col" and "direct": one GEMM reads dy once. (Autodiff of the direct form would emit one
    # reduction per tap, each recomputing dy's producers: ~9× slower in a training step.)
    if w_shape[2] == 1:
        # One input channel: taps stacked as rows [kh·kw, B·H·W], the GEMM's natural layout;
        # [B, H, W, kh·kw] patches would be transposed by a strided copy costing more than the GEMM.
        # Stacked as [kh·kw, B, H, W] first: XLA:CPU then writes the rows in one fusion instead of
        # one per tap plus a copy (1.6 vs 2.7 ms for the reference net's first layer, one core).
        taps = _taps(x, w_shape[:2], strides, padding)
        rows = jnp.stack([tap[..., 0] for tap in taps]).reshape(len(taps), -1)
        return (rows @ dy.reshape(-1, w_shape[3])).reshape(w_shape)
    cols = patches(x, w_shape[:2], strides, padding)
    return jnp.einsum("bhwk,bhwo->ko", cols, dy).reshape(w_shape)


# ---------------------------------------------------------------------------------------------
# Across runs: the vmap rule of each of the three per-run functions.


def _batched(single, batched_form, across_runs):
    """`single(*arrays)` as a custom_vmap function; its vmap rule batches runs `across_runs`."""
    mapped = jax.custom_batching.custom_vmap(single)

    @mapped.def_vmap
    def rule(axis_size, in_batched, *args):
        if across_runs == "per_run":
            args = [
                a if batched else jnp.broadcast_to(a, (axis_size,) + a.shape) for a, batched in zip(args, in_batched)
            ]
            # Runs as separate dense ops: each is the single-run computation.
            return jnp.stack([single(*(a[s] for a in args)) for s in range(axis_size)]), True
        # "grouped": jax's batching of the XLA form (a grouped conv); "bmm": of the im2col form
        # (one batched matmul).
        in_axes = tuple(0 if b else None for b in in_batched)
        return jax.vmap(batched_form, in_axes=in_axes)(*args), True

    return mapped


@functools.cache
def conv_function(routing: Routing, kernel_shape: tuple, strides: tuple, padding: tuple):
    """The routed convolution `(x, w) -> y` for one static layer configuration."""
    kh, kw, c_in, _ = kernel_shape
    method = routing.method_for(kh * kw * c_in)
    # "bmm" batches runs through the im2col form even where the per-run method is "xla".
    batched_method = "im2col" if routing.across_runs == "bmm" else method

    fwd_op = _batched(
        lambda x, w: _forward(method, strides, padding, x, w),
        lambda x, w: _forward(batched_method, strides, padding, x, w),
        routing.across_runs,
    )
    dw_op = _batched(
        lambda x, dy: _weight_grad(method, strides, padding, x, dy, kernel_shape),
        lambda x, dy: _weight_grad(batched_method, strides, padding, x, dy, kernel_shape),
        routing.across_runs,
    )
    dx_single = lambda dy, w, x: _input_grad(strides, padding, dy, w, x.shape)
    dx_op = _batched(dx_single, dx_single, "per_run" if routing.across_runs == "per_run" else "grouped")

    @jax.custom_vjp
    def conv(x, w):
        return fwd_op(x, w)

    def conv_fwd(x, w):
        return fwd_op(x, w), (x, w)

    def conv_bwd(residuals, dy):
        x, w = residuals
        return dx_op(dy, w, x), dw_op(x, dy)

    conv.defvjp(conv_fwd, conv_bwd)
    return conv


# ---------------------------------------------------------------------------------------------
# Routing flax convolutions.

_active = threading.local()


def current() -> Routing | None:
    return getattr(_active, "routing", None)


def _static_padding(module, x, kernel_hw, strides):
    padding = module.padding
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            return None
        return tuple(lax.padtype_to_pads(x.shape[1:3], kernel_hw, strides, padding.upper()))
    if isinstance(padding, int):
        return ((padding, padding),) * 2
    pads = tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)
    return pads if len(pads) == 2 else None


def _pair(value):
    if value is None:
        return (1, 1)
    return (value, value) if isinstance(value, int) else tuple(value)


def _routed_conv(module: nn.Conv, x):
    """The flax Conv `module` applied to x through `conv_function`, or None if not handled."""
    kernel_hw = _pair(module.kernel_size)
    strides = _pair(module.strides)
    if (
        x.ndim != 4
        or len(kernel_hw) != 2
        or module.feature_group_count != 1
        or module.mask is not None
        or _pair(module.input_dilation) != (1, 1)
        or _pair(module.kernel_dilation) != (1, 1)
    ):
        return None
    padding = _static_padding(module, x, kernel_hw, strides)
    if padding is None:
        return None
    kernel = module.get_variable("params", "kernel")
    bias = module.get_variable("params", "bias") if module.use_bias else None
    x, kernel, bias = module.promote_dtype(x, kernel, bias, dtype=module.dtype)
    route = current()
    fn = conv_function(route, tuple(kernel.shape), strides, tuple(tuple(p) for p in padding))
    if route.dtype is None:
        y = fn(x, kernel)
    else:
        y = fn(x.astype(route.dtype), kernel.astype(route.dtype)).astype(x.dtype)
    return y if bias is None else y + bias.reshape(1, 1, 1, -1)


def _interceptor(next_fun, args, kwargs, context):
    module = context.module
    if (
        current() is not None
        and context.method_name == "__call__"
        and type(module) is nn.Conv
        and not module.is_initializing()
        and len(args) == 1
        and not kwargs
    ):
        y = _routed_conv(module, args[0])
        if y is not None:
            return y
    return next_fun(*args, **kwargs)


@contextlib.contextmanager
def routing(route: Routing | None):
    """Within this block, flax `nn.Conv` calls being traced use `route` (None: flax's own)."""
    if route is None:
        yield
        return
    previous = current()
    _active.routing = route
    try:
        with nn.intercept_methods(_interceptor):
            yield
    finally:
        _active.routing = previous
