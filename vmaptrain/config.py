"""A study's configuration: every field a user sets, validated before any work starts."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from vmaptrain import optim, rng, tta
from vmaptrain.engine.strategy import Strategy
from vmaptrain.models import INIT_CHOICES

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
    "eval_every_epochs",
    "tensorboard",
    "keep_weights",
)
PER_RUN_FIELDS = ("lr", "wd", "momentum", "label_smoothing", "poke_step", "poke_index")


class StudyError(ValueError):
    """A bad study configuration or workdir; the message is one line a user can act on."""


def _field(default, help: str, flag: str = "") -> dataclasses.Field:
    """A config field with its flag help (`vmaptrain.cli` generates the flags from these).
    `flag` is how the flag's text is parsed: "floats" (a number, or one per run), "ints" (an
    integer, or one per run), "int_list" (comma-separated integers); default: the field's type."""
    return dataclasses.field(default=default, metadata={"help": help, "flag": flag})


@dataclasses.dataclass
class StudyConfig:
    dataset: str = _field(
        "digits",
        "digits | cifar10 | cifar100 | mnist | fashion_mnist | svhn_cropped | idx:DIR | cifar:DIR | npz:FILE | "
        "folder:DIR",
    )
    model: str = _field(
        "small_cnn", "Model name from the registry: small_cnn | resnet14_sd | resnet9_paper | airbench94."
    )
    width: float = _field(1.0, "Width multiplier of the model.")
    init: str = _field(
        "model",
        "Initialisation convention: model (the model's own, that of the original it reproduces) | torch "
        "(PyTorch's conv/linear defaults) | flax (flax's defaults); see docs/presets.md.",
    )
    num_seeds: int = _field(32, "Number of runs.")
    epochs: float = _field(
        20, "Training epochs per run (0 = evaluate at init; may be fractional: ceil(epochs · steps/epoch) steps)."
    )
    batch_size: int = _field(64, "Batch size of every run.")
    optimizer: str = _field("nesterov", "sgd | nesterov | adam")
    lr: PerRun = _field(0.05, "Peak learning rate, or one per run, comma-separated.", "floats")
    wd: PerRun = _field(5e-4, "Weight decay, or one per run.", "floats")
    momentum: PerRun = _field(0.9, "Momentum (β1 for adam), or one per run.", "floats")
    label_smoothing: PerRun = _field(0.0, "Label smoothing, or one per run.", "floats")
    schedule: str = _field("linear", "linear | cosine | constant (after warmup) | piecewise")
    warmup_epochs: float = _field(0.0, "Linear warmup length in epochs.")
    schedule_start: float = _field(0.0, "piecewise: lr factor at step 0 (rises to 1 at warmup_epochs).")
    schedule_end: float = _field(0.0, "piecewise: lr factor at the last step.")
    schedule_cycles: int = _field(1, "Restart the schedule this many times (snapshot ensembles).")
    norm_lr_scale: float = _field(1.0, "lr multiple of BatchNorm parameters.")
    norm_wd_scale: float = _field(1.0, "Weight-decay multiple of BatchNorm parameters.")
    lookahead: bool = _field(False, "airbench's lookahead (EMA every 5 steps).")
    tta: str = _field(
        "none",
        "Test-time augmentation of the stored predictions: none | flip | airbench | crop25 | crop81 | "
        "flip_crop25 | flip_crop81 | crop:P:S | flip_crop:P:S",
    )
    snapshot_epochs: tuple = _field((), "Also store test logits after these epochs, comma-separated.", "int_list")
    flip: str = _field("none", "none | random | alternating")
    translate: int = _field(0, "Random translation padding in pixels.")
    translate_mode: str = _field("zero", "zero | reflect")
    cutout: int = _field(0, "Cutout square size in pixels (0 = off).")
    vary: str = _field("all", "Streams that differ between runs: all, none, or a subset of init,order,aug.")
    seed: int = _field(0, "Study seed.")
    fixed_seed: int = _field(0, "Seed shared by the streams not in --vary.")
    poke_step: PerRun = _field(-1, "Step at which to poke one weight (-1 = never), or one per run.", "ints")
    poke_factor: float = _field(1.001, "Factor the poked weight is multiplied by.")
    poke_param: str | None = _field(None, "Parameter path to poke, e.g. conv0/kernel (default: the model's).")
    poke_index: PerRun = _field(0, "Flat index of the poked weight, or one per run.", "ints")
    strategy: str = _field(
        "default",
        "How runs are batched: default (the fastest measured on this backend and CPU family; auto on "
        "accelerators) | auto (time candidates, cache the fastest) | vmap | unrolled | serial | chunk:K | "
        "map[:K], optionally +direct, +perrun|+bmm, +bf16, +eigen (see vmaptrain/engine/strategy.py)",
    )
    group_size: int = _field(
        0, "Train runs in groups of this size (0 = all at once; unrolled strategies: at most 8 per device)."
    )
    eval_batch_size: int = _field(1000, "Test examples per evaluation batch.")
    eval_every_epochs: int = _field(
        0, "Also evaluate every run's test accuracy every E epochs into metrics.jsonl (0 = only at the end)."
    )
    tensorboard: bool = _field(True, "Write TensorBoard event files, one directory per run (needs tensorboard).")
    keep_weights: bool = _field(False, "Save every run's final variables (orbax) in the workdir's weights/.")
    data_dir: str | None = _field(None, "tfds data_dir.")
    manual_dir: str | None = _field(None, "tfds manual_dir: prepare a tfds dataset offline from local archives.")
    checkpoint_every_steps: int = _field(0, "Checkpoint every N optimizer steps (0 = by time only).")
    checkpoint_every_minutes: float = _field(
        10.0, "Checkpoint every M minutes (0 = by steps only; single-process studies)."
    )

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
        need(
            isinstance(self.eval_every_epochs, int) and self.eval_every_epochs >= 0,
            f"eval_every_epochs must be an integer ≥ 0 (0 = only at the end), got {self.eval_every_epochs!r}",
        )
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
        need(self.init in INIT_CHOICES, f"unknown init '{self.init}'; choose from {', '.join(INIT_CHOICES)}")
        need(self.poke_factor > 0, f"poke_factor must be > 0, got {self.poke_factor}")
        try:
            rng.parse_vary(self.vary)
            self.parsed_strategy = Strategy.parse(self.strategy)
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
        if "init" not in obj:
            # Saved before `init` existed: those runs had flax's defaults wherever the model set
            # no init of its own (all of small_cnn, resnet14_sd's head), i.e. init="flax"; reading
            # them back as such keeps a resumed workdir's runs on one convention.
            obj = {**obj, "init": "flax" if obj.get("model", "small_cnn") in ("small_cnn", "resnet14_sd") else "model"}
        return cls(**obj)  # __post_init__ turns JSON lists back into tuples

    def differences(self, other: StudyConfig) -> list[str]:
        """Fields (other than execution details) where two configs disagree."""
        mine, theirs = self.to_json(), other.to_json()
        return [name for name in mine if name not in EXECUTION_FIELDS and mine[name] != theirs[name]]

    def resize_conflicts(self, other: StudyConfig) -> list[str]:
        """Fields that stop one of two configs from being the other with more runs: every field
        `differences` names except num_seeds, where a per-run field counts only if the runs both
        studies have get different values (a list may go on where the smaller study's ends)."""
        shared = min(self.num_seeds, other.num_seeds)
        conflicts = []
        for name in self.differences(other):
            if name == "num_seeds":
                continue
            if name in PER_RUN_FIELDS and self.per_run(name)[:shared] == other.per_run(name)[:shared]:
                continue
            conflicts.append(name)
        return conflicts
