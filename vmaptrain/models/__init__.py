"""Model registry: name → flax.linen module. BatchNorm statistics are always per run."""

from __future__ import annotations

import flax.linen as nn

from vmaptrain.models import conventions
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


# `init` of make_model: the model's declared convention, or one of conventions.INIT_CONVENTIONS.
MODEL_INIT = "model"
INIT_CHOICES = (MODEL_INIT, *conventions.INIT_CONVENTIONS)


def declared_init(name: str) -> str:
    """The initialisation convention model `name` uses by default (that of its original)."""
    return REGISTRY[name].init_convention


def make_model(name: str, num_classes: int, width: float = 1.0, train_images=None, init: str = MODEL_INIT) -> nn.Module:
    """`train_images` (normalised, [N, H, W, C]) feed models whose first layer is computed from
    the data (airbench94's whitening); other models ignore them. `init` picks the
    initialisation convention (vmaptrain.models.conventions); "model" keeps the model's own."""
    if init not in INIT_CHOICES:
        raise ModelError(f"unknown init '{init}'; choose from {', '.join(INIT_CHOICES)}")
    if name not in REGISTRY:
        raise ModelError(f"unknown model '{name}'; choose from {', '.join(sorted(REGISTRY))}")
    if not width > 0:
        raise ModelError(f"model width multiplier must be > 0, got {width}")
    if num_classes < 2:
        raise ModelError(f"a classifier needs at least 2 classes, got {num_classes}")
    cls = REGISTRY[name]
    fields = dict(
        num_classes=num_classes, width=width, init_convention=declared_init(name) if init == MODEL_INIT else init
    )
    if getattr(cls, "needs_training_images", False):
        if train_images is None:
            raise ModelError(f"model '{name}' computes its first layer from the training images; pass train_images")
        try:
            return cls(**fields, whitening=whitening_filters(train_images))
        except ValueError as err:
            raise ModelError(str(err)) from None
    return cls(**fields)


__all__ = [
    "INIT_CHOICES",
    "REGISTRY",
    "ModelError",
    "declared_init",
    "make_model",
    "SmallCNN",
    "ResNet14SD",
    "ResNet9Paper",
    "Airbench94",
]
