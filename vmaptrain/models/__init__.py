"""Model registry: name → flax.linen module. BatchNorm statistics are always per run."""

from __future__ import annotations

import flax.linen as nn

from vmaptrain.models.airbench94 import Airbench94, whitening_filters, whitening_sample  # noqa: F401 (public)
from vmaptrain.models.resnet9_paper import ResNet9Paper
from vmaptrain.models.resnet14_sd import ResNet14SD
from vmaptrain.models.small_cnn import SmallCNN

REGISTRY: dict[str, type[nn.Module]] = {
    "small_cnn": SmallCNN,
    "resnet14_sd": ResNet14SD,
    "resnet9_paper": ResNet9Paper,
    "airbench94": Airbench94,
}


class ModelError(ValueError):
    """An unknown model name or an impossible model configuration."""


def make_model(name: str, num_classes: int, width: float = 1.0, train_images=None) -> nn.Module:
    """`train_images` (normalised, [N, H, W, C]) feed models whose first layer is computed from
    the data (airbench94's whitening); other models ignore them."""
    if name not in REGISTRY:
        raise ModelError(f"unknown model '{name}'; choose from {', '.join(sorted(REGISTRY))}")
    if not width > 0:
        raise ModelError(f"model width multiplier must be > 0, got {width}")
    if num_classes < 2:
        raise ModelError(f"a classifier needs at least 2 classes, got {num_classes}")
    cls = REGISTRY[name]
    if getattr(cls, "needs_training_images", False):
        if train_images is None:
            raise ModelError(f"model '{name}' computes its first layer from the training images; pass train_images")
        try:
            return cls(num_classes=num_classes, width=width, whitening=whitening_filters(train_images))
        except ValueError as err:
            raise ModelError(str(err)) from None
    return cls(num_classes=num_classes, width=width)


__all__ = ["REGISTRY", "ModelError", "make_model", "SmallCNN", "ResNet14SD", "ResNet9Paper", "Airbench94"]
