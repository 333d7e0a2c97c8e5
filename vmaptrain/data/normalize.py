"""Pixel normalisation, applied on device after augmentation."""

import jax.numpy as jnp
from jax.typing import ArrayLike


def normalize(images: ArrayLike, mean: ArrayLike, std: ArrayLike) -> jnp.ndarray:
    """(images − mean) / std as float32; `images` [..., C] uint8 or float, `mean`/`std` [C].

    Pure and jit-able; `mean` and `std` are in the same 0..255 units as the pixels.
    """
    images = jnp.asarray(images, jnp.float32)
    return (images - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
