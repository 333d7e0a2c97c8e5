"""airbench94 (Jordan 2024, arXiv 2404.00498; cifar10-airbench `legacy/airbench94.py`), see docs/presets.md.

A frozen 2×2 patch-whitening conv (its filters come from the training images, so the study
builds this module with `whitening_filters`), GELU, three groups of
conv → maxpool2 → BN → GELU → conv → BN → GELU at widths 64/256/256, a global max, a bias-free
linear head and logits × 1/9. BatchNorm: eps 1e-12, no scale (frozen at 1), PyTorch momentum
0.4 (keep-rate 0.6). Every 3×3 conv starts from its convention's init (PyTorch's by default)
with its first c_in filters replaced by identities (Dirac); the whitening bias starts at 0 under
either convention, as airbench sets it.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vmaptrain.models import conventions
from vmaptrain.models.layers import batch_norm, conv, dense, max_pool2, scaled

WHITENING_IMAGES = 5000  # airbench whitens from 5,000 training images
WHITENING_EPS = 5e-4


def whitening_sample(num_images: int) -> np.ndarray:
    """Indices of the (at most 5,000) training images the whitening is computed from: evenly
    spaced, not airbench's first 5,000 of a shuffled CIFAR-10, because a folder dataset is
    sorted by class. All of them when there are no more than 5,000."""
    return np.linspace(0, num_images - 1, min(num_images, WHITENING_IMAGES)).astype(np.int64)


def whitening_filters(images: np.ndarray, chunk: int = 500) -> tuple:
    """The frozen first layer's kernel, [2, 2, C, 8C] flattened to a (hashable) tuple.

    `images` are normalised training images [N, H, W, C], of which `whitening_sample` picks at
    most 5,000. Filters are the eigenvectors of the
    uncentred covariance of all 2×2 patches, largest eigenvalue first, each scaled by
    1/sqrt(eigenvalue + 5e-4), followed by their negations.
    """
    images = np.asarray(images, np.float64)
    if images.ndim == 4:
        images = images[whitening_sample(len(images))]
    if images.ndim != 4 or min(images.shape[1:3]) < 2:
        raise ValueError(f"whitening needs images [N, H, W, C] of at least 2×2, got shape {images.shape}")
    channels = images.shape[-1]
    dim = 4 * channels
    covariance, count = np.zeros((dim, dim)), 0
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk]
        patches = np.stack(
            [x[:, i : x.shape[1] - 1 + i, j : x.shape[2] - 1 + j, :] for i in (0, 1) for j in (0, 1)], axis=3
        )  # [n, H-1, W-1, (kh kw), C]
        patches = patches.reshape(-1, dim)  # (kh, kw, c) order = HWIO
        covariance += patches.T @ patches
        count += len(patches)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance / count)
    order = np.argsort(eigenvalues)[::-1]
    filters = eigenvectors[:, order] / np.sqrt(eigenvalues[order] + WHITENING_EPS)  # columns are filters
    kernel = np.concatenate([filters, -filters], axis=1).reshape(2, 2, channels, 2 * dim)
    return tuple(float(v) for v in kernel.astype(np.float32).reshape(-1))


def dirac(base_init):
    """`base_init`, then output filter o < c_in becomes the identity on channel o."""

    def init(key, shape, dtype=jnp.float32):
        kernel = base_init(key, shape, dtype)
        kh, kw, c_in, c_out = shape
        n = min(c_in, c_out)
        identity = jnp.zeros((kh, kw, c_in, n), dtype).at[kh // 2, kw // 2, jnp.arange(n), jnp.arange(n)].set(1)
        return kernel.at[..., :n].set(identity)

    return init


class Whitening(nn.Module):
    """The frozen 2×2 conv (a constant of the program, not a parameter) plus a trained bias."""

    kernel: tuple

    @nn.compact
    def __call__(self, x):
        channels = x.shape[-1]
        if len(self.kernel) != 32 * channels * channels:
            raise ValueError(
                f"airbench94's whitening filters were computed for other images: "
                f"{len(self.kernel)} values, {channels}-channel images need {32 * channels * channels}"
            )
        kernel = jnp.asarray(np.asarray(self.kernel, np.float32).reshape(2, 2, channels, 8 * channels))
        bias = self.param("bias", nn.initializers.zeros, (8 * channels,), jnp.float32)
        x = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return x + bias


class ConvGroup(nn.Module):
    channels: int
    init_convention: str

    @nn.compact
    def __call__(self, x, train: bool):
        def bn(name):
            return batch_norm(train, name, momentum=0.6, epsilon=1e-12, use_scale=False)

        kernel_init = dirac(conventions.kernel_init(self.init_convention))
        x = conv(x, self.channels, 3, self.init_convention, "conv1", kernel_init=kernel_init)
        x = nn.gelu(bn("norm1")(max_pool2(x)), approximate=False)
        x = conv(x, self.channels, 3, self.init_convention, "conv2", kernel_init=kernel_init)
        return nn.gelu(bn("norm2")(x), approximate=False)


class Airbench94(nn.Module):
    num_classes: int
    width: float = 1.0
    whitening: tuple = ()  # from whitening_filters(training images)
    init_convention: str = "torch"  # vmaptrain.models.conventions
    # The whitening kernel is frozen, the Dirac filters and zero-init biases are no-ops for a
    # ×1.001 poke, so a poke scales a (random) head weight by default.
    default_poke_param: ClassVar[str] = "head/kernel"
    # airbench trains the whitening bias for the first 3 epochs only.
    train_only_epochs: ClassVar[dict] = {"whiten/bias": 3.0}
    needs_training_images: ClassVar[bool] = True

    @nn.compact
    def __call__(self, x, train: bool):
        if min(x.shape[1:3]) < 16:
            raise ValueError(f"airbench94 needs images of at least 16×16 pixels, got {x.shape[1]}×{x.shape[2]}")
        x = nn.gelu(Whitening(self.whitening, name="whiten")(x), approximate=False)
        for i, channels_out in enumerate((64, 256, 256)):
            x = ConvGroup(scaled(channels_out, self.width), self.init_convention, name=f"group{i + 1}")(x, train)
        x = jnp.max(x, axis=(1, 2))
        return dense(x, self.num_classes, self.init_convention, "head", use_bias=False) / 9.0
