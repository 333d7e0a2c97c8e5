"""ResNet-14 of Summers & Dinneen (2021): 3 stages × 2 BasicBlocks, widths 16/32/64.

Shortcut on a shape change: stride-s subsampling (AvgPool(1, s)) → BN → zero-channel concat.
Their `resnet_cifar.py` sets the conv init (Kaiming-normal, fan_out) and the last BN γ of every
block (0) itself, under either convention; the linear head keeps its framework's default, so
the convention decides it: PyTorch's (weight and bias U(±1/√fan_in)) by default.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax.numpy as jnp

from vmaptrain.models.layers import batch_norm, dense, kaiming_fan_out, scaled


def _conv(channels: int, stride: int, name: str):
    return nn.Conv(
        channels,
        (3, 3),
        strides=(stride, stride),
        padding=((1, 1), (1, 1)),
        use_bias=False,
        kernel_init=kaiming_fan_out,
        name=name,
    )


class BasicBlock(nn.Module):
    channels: int
    stride: int

    @nn.compact
    def __call__(self, x, train: bool):
        out = _conv(self.channels, self.stride, "conv1")(x)
        out = nn.relu(batch_norm(train, "bn1")(out))
        out = _conv(self.channels, 1, "conv2")(out)
        out = batch_norm(train, "bn2", scale_init=nn.initializers.zeros)(out)
        shortcut = x
        if self.stride != 1 or x.shape[-1] != self.channels:
            shortcut = x[:, :: self.stride, :: self.stride, :]
            shortcut = batch_norm(train, "bn_shortcut")(shortcut)
            missing = self.channels - shortcut.shape[-1]
            shortcut = jnp.pad(shortcut, ((0, 0), (0, 0), (0, 0), (0, missing)))
        return nn.relu(out + shortcut)


class ResNet14SD(nn.Module):
    num_classes: int
    width: float = 1.0
    init_convention: str = "torch"  # vmaptrain.models.conventions
    # The first layer's kernel: what a poke scales unless told otherwise.
    default_poke_param: ClassVar[str] = "stem_conv/kernel"

    @nn.compact
    def __call__(self, x, train: bool):
        x = _conv(scaled(16, self.width), 1, "stem_conv")(x)
        x = nn.relu(batch_norm(train, "stem_bn")(x))
        for stage, (channels, stride) in enumerate(((16, 1), (32, 2), (64, 2))):
            for block in range(2):
                x = BasicBlock(
                    scaled(channels, self.width), stride if block == 0 else 1, name=f"stage{stage}_block{block}"
                )(x, train)
        x = jnp.mean(x, axis=(1, 2))
        return dense(x, self.num_classes, self.init_convention, "head")
