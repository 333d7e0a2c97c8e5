"""Initialisation conventions: whose defaults a layer gets when its original leaves it at default.

* "torch": PyTorch's `reset_parameters` of `Conv2d` and `Linear`: the weight is
  kaiming_uniform(a=√5), which is U(±1/√fan_in), and the bias is U(±1/√fan_in) with the
  weight's fan_in (kh·kw·c_in for a conv kernel). `BatchNorm2d`: weight 1, bias 0.
* "flax": flax.linen's defaults: the kernel is lecun_normal (a truncated normal of variance
  1/fan_in, three times the torch variance), the bias 0. `BatchNorm`: scale 1, bias 0.

Choices an original makes explicitly (resnet14_sd's Kaiming fan_out convs and zero last-BN
scale, airbench94's Dirac filters and whitening) belong to the architecture and apply under both
conventions; docs/presets.md ("Conventions") records each preset's.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

INIT_CONVENTIONS = ("torch", "flax")


def check(convention: str) -> None:
    if convention not in INIT_CONVENTIONS:
        raise ValueError(f"unknown init convention '{convention}'; choose from {', '.join(INIT_CONVENTIONS)}")


def symmetric_uniform(bound: float):
    """Initializer drawing U(−bound, bound)."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def variance_scaling(scale: float, mode: str, distribution: str):
    """`jax.nn.initializers.variance_scaling` of a conv or dense kernel [..., in, out], bitwise,
    drawn as one flat vector and reshaped.

    jax's threefry derives each value's bits from its flat index, so the values are identical;
    but XLA:CPU compiles a 1-D draw 10–20× faster than a 4-D one (0.3 s against 5 s for a
    3×3×4×8 kernel on a 2-core CPU), which was most of the compile time of a small model's init.
    """
    if mode not in ("fan_in", "fan_out") or distribution not in ("uniform", "normal", "truncated_normal"):
        raise ValueError(f"unsupported variance scaling {mode}/{distribution}")

    def init(key, shape, dtype=jnp.float32):
        receptive_field = math.prod(shape[:-2])
        fan = (shape[-2] if mode == "fan_in" else shape[-1]) * receptive_field
        variance = jnp.array(scale / fan, dtype=dtype)
        size = (math.prod(shape),)
        if distribution == "uniform":
            flat = jax.random.uniform(key, size, dtype, -1) * jnp.sqrt(3 * variance)
        elif distribution == "normal":
            flat = jax.random.normal(key, size, dtype) * jnp.sqrt(variance)
        else:  # truncated at ±2, rescaled so the variance is `variance`
            flat = jax.random.truncated_normal(key, -2, 2, size, dtype) * (
                jnp.sqrt(variance) / jnp.array(0.87962566103423978, dtype)
            )
        return flat.reshape(shape)

    return init


# U(±√(3·(1/3)/fan_in)) = U(±1/√fan_in); fan_in of an HWIO kernel is kh·kw·c_in, of a dense one c_in.
torch_kernel_init = variance_scaling(1.0 / 3.0, "fan_in", "uniform")
# flax's default kernel init, lecun_normal.
flax_kernel_init = variance_scaling(1.0, "fan_in", "truncated_normal")


def kernel_init(convention: str):
    """The weight initializer of a conv or dense layer under `convention`."""
    check(convention)
    return torch_kernel_init if convention == "torch" else flax_kernel_init


def bias_init(convention: str, fan_in: int):
    """The bias initializer of a conv or dense layer whose weight has `fan_in` inputs per output."""
    check(convention)
    if convention == "flax":
        return jax.nn.initializers.zeros
    return symmetric_uniform(1.0 / math.sqrt(fan_in))
