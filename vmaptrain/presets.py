"""Named training recipes: a model with the hyperparameters and augmentation its paper used.

A recipe is a dict of `StudyConfig` fields; `dataset`, `num_seeds`, `epochs` and `width` are left
to the caller (a replication scale, or the user). Sources: ../shared/reference/paper-configs.md
(ResNet-9 of Calibrated Chaos, from ffcv-cifar) and statistics.md §2.3 (Summers & Dinneen).
"""

from __future__ import annotations

from vmaptrain.config import StudyError

RECIPES = {
    # The reference CPU net: Nesterov SGD, linear decay to 0, no augmentation (8×8 / 28×28 inputs).
    "small_cnn": dict(model="small_cnn", optimizer="nesterov", lr=0.05, momentum=0.9, wd=5e-4,
                      batch_size=64, schedule="linear"),
    # Calibrated Chaos ResNet-9: plain SGD lr 0.5 / momentum 0.9 / wd 5e-4 on every parameter,
    # batch 500, linear decay to 0 with no warmup; flip, 2-px black translate, 12-px cutout.
    "resnet9_paper": dict(model="resnet9_paper", optimizer="sgd", lr=0.5, momentum=0.9, wd=5e-4,
                          batch_size=500, schedule="linear", warmup_epochs=0.0, flip="random",
                          translate=2, translate_mode="zero", cutout=12),
    # Summers & Dinneen ResNet-14: SGD momentum 0.9, wd 5e-4, batch 512, peak lr 0.4 after a
    # 3-epoch warmup, cosine to 0; random crop (pad 4) + flip. Their 0.1× lr on biases and BN
    # scales is not modelled (one lr per run).
    "resnet14_sd": dict(model="resnet14_sd", optimizer="sgd", lr=0.4, momentum=0.9, wd=5e-4,
                        batch_size=512, schedule="cosine", warmup_epochs=3.0, flip="random",
                        translate=4, translate_mode="zero"),
}

# Training lengths the papers report for each recipe.
PAPER_EPOCHS = {"small_cnn": (1, 2, 4, 8, 16), "resnet9_paper": (0, 4, 16, 64), "resnet14_sd": (500,)}


def recipe(name: str) -> dict:
    if name not in RECIPES:
        raise StudyError(f"unknown recipe '{name}'; choose from {', '.join(sorted(RECIPES))}")
    return dict(RECIPES[name])
