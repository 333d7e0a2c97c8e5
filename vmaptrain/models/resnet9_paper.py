"""The ResNet-9 of Calibrated Chaos (App. A.1; ffcv-cifar `model.py`), see docs/presets.md.

conv_bn = Conv(no bias) → BN(eps 1e-5, PyTorch momentum 0.1) → ReLU; PyTorch default init.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax.numpy as jnp

from vmaptrain.models.layers import batch_norm, conv, dense, max_pool2, scaled


class ConvBN(nn.Module):
    channels: int
    init_convention: str
    kernel: int = 3
    stride: int = 1
    padding: int = 1

    @nn.compact
    def __call__(self, x, train: bool):
        pad = ((self.padding, self.padding), (self.padding, self.padding))
        x = conv(x, self.channels, self.kernel, self.init_convention, "conv", stride=self.stride, padding=pad)
        return nn.relu(batch_norm(train, "bn")(x))


class Residual(nn.Module):
    channels: int
    init_convention: str

    @nn.compact
    def __call__(self, x, train: bool):
        out = ConvBN(self.channels, self.init_convention, name="conv_bn1")(x, train)
        out = ConvBN(self.channels, self.init_convention, name="conv_bn2")(out, train)
        return x + out


class ResNet9Paper(nn.Module):
    num_classes: int
    width: float = 1.0
    init_convention: str = "torch"  # vmaptrain.models.conventions
    # The first layer's kernel: what a poke scales unless told otherwise.
    default_poke_param: ClassVar[str] = "prep/conv/kernel"

    @nn.compact
    def __call__(self, x, train: bool):
        if min(x.shape[1:3]) < 12:
            raise ValueError(f"resnet9_paper needs images of at least 12×12 pixels, got {x.shape[1]}×{x.shape[2]}")
        init = self.init_convention
        c64, c128, c256 = (scaled(c, self.width) for c in (64, 128, 256))
        x = ConvBN(c64, init, name="prep")(x, train)
        x = ConvBN(c128, init, kernel=5, stride=2, padding=2, name="down")(x, train)
        x = Residual(c128, init, name="res1")(x, train)
        x = ConvBN(c256, init, name="widen")(x, train)
        x = max_pool2(x)
        x = Residual(c256, init, name="res2")(x, train)
        x = ConvBN(c128, init, padding=0, name="narrow")(x, train)
        x = jnp.max(x, axis=(1, 2))
        return 0.2 * dense(x, self.num_classes, init, "head", use_bias=False)
