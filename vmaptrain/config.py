"""A study's configuration: every field a user sets, validated before any work starts."""

from __future__ import annotations

import dataclasses
from typing import Sequence, Union

from vmaptrain import optim, parallel, rng

PerRun = Union[float, Sequence[float]]

# Fields that change how a study runs but not what it computes: a workdir may be resumed or
# re-read with different values of these.
EXECUTION_FIELDS = ("strategy", "group_size", "eval_batch_size", "data_dir", "manual_dir",
                    "checkpoint_every_steps", "checkpoint_every_minutes")
PER_RUN_FIELDS = ("lr", "wd", "momentum", "label_smoothing", "poke_step", "poke_index")


class StudyError(ValueError):
    """A bad study configuration or workdir; the message is one line a user can act on."""


@dataclasses.dataclass
class StudyConfig:
    dataset: str = "digits"
    model: str = "small_cnn"
    width: float = 1.0
    num_seeds: int = 32
    epochs: int = 20
    batch_size: int = 64
    optimizer: str = "nesterov"
    lr: PerRun = 0.05
    wd: PerRun = 5e-4
    momentum: PerRun = 0.9
    label_smoothing: PerRun = 0.0
    schedule: str = "linear"
    warmup_epochs: float = 0.0
    flip: str = "none"
    translate: int = 0
    translate_mode: str = "zero"
    cutout: int = 0
    vary: str = "all"
    seed: int = 0
    fixed_seed: int = 0
    poke_step: PerRun = -1
    poke_factor: float = 1.001
    poke_param: str | None = None
    poke_index: PerRun = 0
    strategy: str = "unrolled"
    group_size: int = 0
    eval_batch_size: int = 1000
    data_dir: str | None = None
    manual_dir: str | None = None
    checkpoint_every_steps: int = 0        # 0 = by time only
    checkpoint_every_minutes: float = 10.0  # 0 = by steps only

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        def need(condition, message):
            if not condition:
                raise StudyError(message)

        need(isinstance(self.num_seeds, int) and self.num_seeds >= 1,
             f"num_seeds must be a positive integer, got {self.num_seeds}")
        need(isinstance(self.epochs, int) and self.epochs >= 0, f"epochs must be ≥ 0, got {self.epochs}")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1,
             f"batch_size must be ≥ 1, got {self.batch_size}")
        need(self.eval_batch_size >= 1, f"eval_batch_size must be ≥ 1, got {self.eval_batch_size}")
        need(self.group_size >= 0, f"group_size must be ≥ 0 (0 = all runs at once), got {self.group_size}")
        need(self.checkpoint_every_steps >= 0, f"checkpoint_every_steps must be ≥ 0, got {self.checkpoint_every_steps}")
        need(self.checkpoint_every_minutes >= 0,
             f"checkpoint_every_minutes must be ≥ 0, got {self.checkpoint_every_minutes}")
        need(self.optimizer in optim.OPTIMIZERS,
             f"unknown optimizer '{self.optimizer}'; choose from {', '.join(optim.OPTIMIZERS)}")
        need(self.schedule in optim.SCHEDULES,
             f"unknown lr schedule '{self.schedule}'; choose from {', '.join(optim.SCHEDULES)}")
        need(self.warmup_epochs >= 0, f"warmup_epochs must be ≥ 0, got {self.warmup_epochs}")
        need(self.width > 0, f"width must be > 0, got {self.width}")
        need(self.poke_factor > 0, f"poke_factor must be > 0, got {self.poke_factor}")
        try:
            rng.parse_vary(self.vary)
            parallel.validate_strategy(self.strategy)
        except ValueError as err:
            raise StudyError(str(err)) from None
        for name in PER_RUN_FIELDS:
            values = self.per_run(name)
            need(all(v == v for v in values), f"{name} contains NaN")
        need(all(v > 0 for v in self.per_run("lr")), "lr must be > 0 for every run")
        need(all(v >= 0 for v in self.per_run("wd")), "wd must be ≥ 0 for every run")
        need(all(0 <= v < 1 for v in self.per_run("momentum")), "momentum must lie in [0, 1)")
        need(all(0 <= v < 1 for v in self.per_run("label_smoothing")), "label_smoothing must lie in [0, 1)")
        need(all(v >= 0 for v in self.per_run("poke_index")), "poke_index must be ≥ 0")

    def per_run(self, name: str) -> list:
        """A per-run field as a list of num_seeds values (a scalar is broadcast)."""
        value = getattr(self, name)
        if isinstance(value, (list, tuple)):
            if len(value) != self.num_seeds:
                raise StudyError(f"{name} has {len(value)} values but num_seeds is {self.num_seeds}")
            return list(value)
        return [value] * self.num_seeds

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        for name in PER_RUN_FIELDS:
            if isinstance(out[name], tuple):
                out[name] = list(out[name])
        return out

    @classmethod
    def from_json(cls, obj: dict) -> "StudyConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise StudyError(f"config has unknown field(s): {', '.join(unknown)}")
        return cls(**obj)

    def differences(self, other: "StudyConfig") -> list[str]:
        """Fields (other than execution details) where two configs disagree."""
        mine, theirs = self.to_json(), other.to_json()
        return [name for name in mine if name not in EXECUTION_FIELDS and mine[name] != theirs[name]]
