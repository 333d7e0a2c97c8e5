"""The reference CPU net of this project's benchmarks (BUILD_NOTES.md "Measured"; docs/presets.md).

conv3×3(16) → BN → GELU → maxpool2 → conv(32) → BN → GELU → maxpool2 → conv(64) → BN → GELU →
maxpool2 → global max → dense(num_classes), with a bias on the dense layer only. Its PyTorch
twin is `ReferenceNet` in benchmarks/torch_reference.py, hence PyTorch's init by default.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax.numpy as jnp

from vmaptrain.models.layers import batch_norm, conv, dense, max_pool2, scaled


class SmallCNN(nn.Module):
    num_classes: int
    width: float = 1.0
    init_convention: str = "torch"  # vmaptrain.models.conventions
    # The first layer's kernel: what a poke scales unless told otherwise.
    default_poke_param: ClassVar[str] = "conv0/kernel"

    @nn.compact
    def __call__(self, x, train: bool):
        for i, channels in enumerate((16, 32, 64)):
            x = conv(x, scaled(channels, self.width), 3, self.init_convention, f"conv{i}")
            x = batch_norm(train, f"bn{i}")(x)
            x = nn.gelu(x)
            x = max_pool2(x)
        x = jnp.max(x, axis=(1, 2))
        return dense(x, self.num_classes, self.init_convention, "head")
