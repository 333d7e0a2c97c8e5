"""A study's configuration: every field a user sets, validated before any work starts."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from vmaptrain import optim, parallel, rng, tta

PerRun = float | Sequence[float]

# Fields that change how a study runs but not what it computes: a workdir may be resumed or
# re-read with different values of these.
EXECUTION_FIELDS = (
    "strategy",
    "group_size",
    "eval_batch_size",
    "data_dir",
    "manual_dir",
    "checkpoint_every_steps",
    "checkpoint_every_minutes",
)
PER_RUN_FIELDS = ("lr", "wd", "momentum", "label_smoothing", "poke_step", "poke_index")


class StudyError(ValueError):
    """A bad study configuration or workdir; the message is one line a user can act on."""


@dataclasses.dataclass
class StudyConfig:
    dataset: str = "digits"
    model: str = "small_cnn"
    width: float = 1.0
    num_seeds: int = 32
    epochs: float = 20  # may be fractional (airbench trains 9.9): ceil(epochs · steps/epoch) steps
    batch_size: int = 64
    optimizer: str = "nesterov"
    lr: PerRun = 0.05
    wd: PerRun = 5e-4
    momentum: PerRun = 0.9
    label_smoothing: PerRun = 0.0
    schedule: str = "linear"
    warmup_epochs: float = 0.0
    schedule_start: float = 0.0  # piecewise: lr factor at step 0 (rises to 1 at warmup_epochs)
    schedule_end: float = 0.0  # piecewise: lr factor at the last step
    schedule_cycles: int = 1  # > 1: the schedule restarts (snapshot ensembles)
    norm_lr_scale: float = 1.0  # lr multiple of BatchNorm parameters
    norm_wd_scale: float = 1.0  # weight-decay multiple of BatchNorm parameters
    lookahead: bool = False  # airbench's lookahead (train.lookahead)
    tta: str = "none"  # test-time augmentation of the stored predictions (vmaptrain.tta)
    snapshot_epochs: tuple = ()  # also store test logits after these epochs (snapshot ensembles)
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
    checkpoint_every_steps: int = 0  # 0 = by time only
    checkpoint_every_minutes: float = 10.0  # 0 = by steps only

    def __post_init__(self):
        if isinstance(self.snapshot_epochs, list):
            self.snapshot_epochs = tuple(self.snapshot_epochs)
        self.validate()

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps of every run: ceil(epochs · steps_per_epoch)."""
        return math.ceil(round(self.epochs * steps_per_epoch, 6))

    def validate(self) -> None:
        def need(condition, message):
            if not condition:
                raise StudyError(message)

        need(
            isinstance(self.num_seeds, int) and self.num_seeds >= 1,
            f"num_seeds must be a positive integer, got {self.num_seeds}",
        )
        need(
            isinstance(self.epochs, (int, float)) and not isinstance(self.epochs, bool) and self.epochs >= 0,
            f"epochs must be a number ≥ 0, got {self.epochs!r}",
        )
        need(
            isinstance(self.batch_size, int) and self.batch_size >= 1, f"batch_size must be ≥ 1, got {self.batch_size}"
        )
        need(self.eval_batch_size >= 1, f"eval_batch_size must be ≥ 1, got {self.eval_batch_size}")
        need(self.group_size >= 0, f"group_size must be ≥ 0 (0 = all runs at once), got {self.group_size}")
        need(self.checkpoint_every_steps >= 0, f"checkpoint_every_steps must be ≥ 0, got {self.checkpoint_every_steps}")
        need(
            self.checkpoint_every_minutes >= 0,
            f"checkpoint_every_minutes must be ≥ 0, got {self.checkpoint_every_minutes}",
        )
        need(
            self.optimizer in optim.OPTIMIZERS,
            f"unknown optimizer '{self.optimizer}'; choose from {', '.join(optim.OPTIMIZERS)}",
        )
        need(
            self.schedule in optim.SCHEDULES,
            f"unknown lr schedule '{self.schedule}'; choose from {', '.join(optim.SCHEDULES)}",
        )
        need(self.warmup_epochs >= 0, f"warmup_epochs must be ≥ 0, got {self.warmup_epochs}")
        need(
            self.schedule == "piecewise" or (self.schedule_start, self.schedule_end) == (0.0, 0.0),
            "schedule_start / schedule_end apply only to schedule=piecewise",
        )
        need(self.schedule_start >= 0 and self.schedule_end >= 0, "schedule_start and schedule_end must be ≥ 0")
        need(
            isinstance(self.schedule_cycles, int) and self.schedule_cycles >= 1,
            f"schedule_cycles must be a positive integer, got {self.schedule_cycles!r}",
        )
        need(self.norm_lr_scale >= 0 and self.norm_wd_scale >= 0, "norm_lr_scale and norm_wd_scale must be ≥ 0")
        snapshots = list(self.snapshot_epochs)
        need(
            all(isinstance(e, int) and 1 <= e <= math.ceil(self.epochs) for e in snapshots)
            and snapshots == sorted(set(snapshots)),
            f"snapshot_epochs must be increasing whole epochs in 1..{math.ceil(self.epochs)}, got {snapshots}",
        )
        need(self.width > 0, f"width must be > 0, got {self.width}")
        need(self.poke_factor > 0, f"poke_factor must be > 0, got {self.poke_factor}")
        try:
            rng.parse_vary(self.vary)
            parallel.validate_strategy(self.strategy)
            tta.views(self.tta)
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
        for name in PER_RUN_FIELDS + ("snapshot_epochs",):
            if isinstance(out[name], tuple):
                out[name] = list(out[name])
        return out

    @classmethod
    def from_json(cls, obj: dict) -> StudyConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise StudyError(f"config has unknown field(s): {', '.join(unknown)}")
        return cls(**obj)  # __post_init__ turns JSON lists back into tuples

    def differences(self, other: StudyConfig) -> list[str]:
        """Fields (other than execution details) where two configs disagree."""
        mine, theirs = self.to_json(), other.to_json()
        return [name for name in mine if name not in EXECUTION_FIELDS and mine[name] != theirs[name]]
