"""Replication sizes: which recipe, dataset, width, number of runs and training lengths.

- smoke: seconds, for tests (digits, quarter-width reference net, 4 runs).
- cpu: this 2-core machine in minutes per figure (on digits a run-epoch takes ≈ 0.2 s).
- paper: the published sizes on CIFAR-10 (GPU).
"""

from __future__ import annotations

import dataclasses

from vmaptrain import presets
from vmaptrain.config import StudyConfig, StudyError


@dataclasses.dataclass(frozen=True)
class Scale:
    name: str
    recipe: str
    dataset: str
    width: float
    num_seeds: int
    epochs: tuple[int, ...]  # training lengths of a sweep, shortest first
    lrs: tuple[float, ...]  # learning-rate grid of lr_sweep
    poke_steps: tuple[int, ...]  # poke steps of the poke figure
    overrides: tuple = ()  # extra StudyConfig fields, as (name, value) pairs

    @property
    def long_epochs(self) -> int:
        return self.epochs[-1]

    def config(self, **changes) -> StudyConfig:
        fields = presets.recipe(self.recipe)
        fields.update(dataset=self.dataset, width=self.width, num_seeds=self.num_seeds, epochs=self.long_epochs)
        fields.update(dict(self.overrides))
        fields.update(changes)
        return StudyConfig(**fields)

    def with_changes(self, **changes) -> Scale:
        """This scale with some fields replaced (e.g. a user's --dataset or --num_seeds)."""
        try:
            return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
        except TypeError as err:
            raise StudyError(str(err)) from None


SCALES = {
    "smoke": Scale("smoke", "small_cnn", "digits", 0.25, 4, (0, 1), (0.02, 0.1), (0, 5), (("batch_size", 128),)),
    # Digits with a 1-pixel translate (so the aug stream matters): ≈ 3,200 run-epochs in all.
    "cpu": Scale(
        "cpu",
        "small_cnn",
        "digits",
        1.0,
        32,
        (1, 2, 4, 8),
        (0.0125, 0.05, 0.2, 0.8),
        (0, 10, 50),
        (("translate", 1), ("group_size", 8)),
    ),  # groups of 8: small programs, fast compiles
    "paper": Scale(
        "paper",
        "resnet9_paper",
        "cifar10",
        1.0,
        1000,
        (0, 4, 16, 64),
        tuple(2.0**k for k in range(-4, 2)),
        (0, 100, 1000),
        (),
    ),
}


def scale_named(name: str) -> Scale:
    if name not in SCALES:
        raise StudyError(f"unknown scale '{name}'; choose from {', '.join(SCALES)}")
    return SCALES[name]
