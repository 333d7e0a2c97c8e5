"""Model registry: name → flax.linen module. BatchNorm statistics are always per run."""

from __future__ import annotations

import flax.linen as nn

from vmaptrain.models.resnet9_paper import ResNet9Paper
from vmaptrain.models.resnet14_sd import ResNet14SD
from vmaptrain.models.small_cnn import SmallCNN

REGISTRY: dict[str, type[nn.Module]] = {
    "small_cnn": SmallCNN,
    "resnet14_sd": ResNet14SD,
    "resnet9_paper": ResNet9Paper,
}


class ModelError(ValueError):
    """An unknown model name or an impossible model configuration."""


def make_model(name: str, num_classes: int, width: float = 1.0) -> nn.Module:
    if name not in REGISTRY:
        raise ModelError(f"unknown model '{name}'; choose from {', '.join(sorted(REGISTRY))}")
    if not width > 0:
        raise ModelError(f"model width multiplier must be > 0, got {width}")
    if num_classes < 2:
        raise ModelError(f"a classifier needs at least 2 classes, got {num_classes}")
    return REGISTRY[name](num_classes=num_classes, width=width)


__all__ = ["REGISTRY", "ModelError", "make_model", "SmallCNN", "ResNet14SD", "ResNet9Paper"]
