"""Flag definitions and error handling shared by the experiment binaries.

Binaries parse flags and call one function here; everything testable lives in the library.
"""

from __future__ import annotations

import json
import sys

from absl import flags

from vmaptrain.config import StudyConfig, StudyError


def _floats(text: str) -> float | list[float]:
    """'0.1' → 0.1; '0.1,0.2' → [0.1, 0.2] (one value per run)."""
    parts = [p for p in text.split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise StudyError(f"expected a number or a comma-separated list of numbers, got '{text}'") from None
    if not values:
        raise StudyError("expected a number, got an empty value")
    return values[0] if len(values) == 1 else values


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _ints(text: str) -> int | list[int]:
    as_list = _as_list(_floats(text))
    if any(v != int(v) for v in as_list):
        raise StudyError(f"expected integers, got '{text}'")
    ints = [int(v) for v in as_list]
    return ints[0] if len(ints) == 1 else ints


def define_study_flags() -> None:
    defaults = StudyConfig()
    flags.DEFINE_string(
        "dataset",
        defaults.dataset,
        "digits | cifar10 | cifar100 | mnist | fashion_mnist | svhn_cropped | idx:DIR | "
        "cifar:DIR | npz:FILE | folder:DIR",
    )
    flags.DEFINE_string("data_dir", None, "tfds data_dir.")
    flags.DEFINE_string("manual_dir", None, "tfds manual_dir: prepare a tfds dataset offline from local archives.")
    flags.DEFINE_string("model", defaults.model, "Model name from the registry.")
    flags.DEFINE_float("width", defaults.width, "Width multiplier of the model.")
    flags.DEFINE_integer("num_seeds", defaults.num_seeds, "Number of runs.")
    flags.DEFINE_string(
        "recipe",
        None,
        "A named recipe (vmaptrain.presets: small_cnn | resnet9_paper | resnet14_sd | "
        "airbench94) setting model, optimizer, schedule, augmentation, …; flags given explicitly "
        "override it.",
    )
    flags.DEFINE_float("epochs", defaults.epochs, "Training epochs per run (0 = evaluate at init; may be fractional).")
    flags.DEFINE_integer("batch_size", defaults.batch_size, "Batch size of every run.")
    flags.DEFINE_string("optimizer", defaults.optimizer, "sgd | nesterov | adam")
    flags.DEFINE_string("lr", str(defaults.lr), "Peak learning rate, or one per run, comma-separated.")
    flags.DEFINE_string("wd", str(defaults.wd), "Weight decay, or one per run.")
    flags.DEFINE_string("momentum", str(defaults.momentum), "Momentum (β1 for adam), or one per run.")
    flags.DEFINE_string("label_smoothing", str(defaults.label_smoothing), "Label smoothing, or one per run.")
    flags.DEFINE_string("schedule", defaults.schedule, "linear | cosine | constant (after warmup) | piecewise")
    flags.DEFINE_float("warmup_epochs", defaults.warmup_epochs, "Linear warmup length in epochs.")
    flags.DEFINE_float("schedule_start", defaults.schedule_start, "piecewise: lr factor at step 0.")
    flags.DEFINE_float("schedule_end", defaults.schedule_end, "piecewise: lr factor at the last step.")
    flags.DEFINE_integer(
        "schedule_cycles", defaults.schedule_cycles, "Restart the schedule this many times (snapshot ensembles)."
    )
    flags.DEFINE_float("norm_lr_scale", defaults.norm_lr_scale, "lr multiple of BatchNorm parameters.")
    flags.DEFINE_float("norm_wd_scale", defaults.norm_wd_scale, "Weight-decay multiple of BatchNorm parameters.")
    flags.DEFINE_bool("lookahead", defaults.lookahead, "airbench's lookahead (EMA every 5 steps).")
    flags.DEFINE_string(
        "tta",
        defaults.tta,
        "Test-time augmentation of the stored predictions: none | flip | "
        "airbench | crop25 | crop81 | flip_crop25 | flip_crop81 | crop:P:S | flip_crop:P:S",
    )
    flags.DEFINE_string("snapshot_epochs", "", "Also store test logits after these epochs, comma-separated.")
    flags.DEFINE_string("flip", defaults.flip, "none | random | alternating")
    flags.DEFINE_integer("translate", defaults.translate, "Random translation padding in pixels.")
    flags.DEFINE_string("translate_mode", defaults.translate_mode, "zero | reflect")
    flags.DEFINE_integer("cutout", defaults.cutout, "Cutout square size in pixels (0 = off).")
    flags.DEFINE_string(
        "vary", defaults.vary, "Streams that differ between runs: all, none, or a subset of init,order,aug."
    )
    flags.DEFINE_integer("seed", defaults.seed, "Study seed.")
    flags.DEFINE_integer("fixed_seed", defaults.fixed_seed, "Seed shared by the streams not in --vary.")
    flags.DEFINE_string(
        "poke_step", str(defaults.poke_step), "Step at which to poke one weight (-1 = never), or one per run."
    )
    flags.DEFINE_float("poke_factor", defaults.poke_factor, "Factor the poked weight is multiplied by.")
    flags.DEFINE_string("poke_param", None, "Parameter path to poke, e.g. conv0/kernel (default: the first).")
    flags.DEFINE_string("poke_index", str(defaults.poke_index), "Flat index of the poked weight, or one per run.")
    flags.DEFINE_string(
        "strategy",
        defaults.strategy,
        "How runs are batched: auto (time candidates, cache the fastest) | "
        "vmap | unrolled | serial | chunk:K | map[:K], optionally +direct, +perrun|+bmm, +bf16, +eigen "
        "(see vmaptrain/parallel.py)",
    )
    flags.DEFINE_integer("group_size", defaults.group_size, "Train runs in groups of this size (0 = all at once).")
    flags.DEFINE_integer("eval_batch_size", defaults.eval_batch_size, "Test examples per evaluation batch.")
    flags.DEFINE_integer(
        "checkpoint_every_steps",
        defaults.checkpoint_every_steps,
        "Checkpoint every N optimizer steps (0 = by time only).",
    )
    flags.DEFINE_float(
        "checkpoint_every_minutes",
        defaults.checkpoint_every_minutes,
        "Checkpoint every M minutes (0 = by steps only; single-process studies).",
    )
    flags.DEFINE_string(
        "coordinator_address", None, "host:port of process 0 for a multi-process study (or env VMAPTRAIN_COORDINATOR)."
    )
    flags.DEFINE_integer("num_processes", None, "Processes in a multi-process study (or env VMAPTRAIN_NUM_PROCESSES).")
    flags.DEFINE_integer(
        "process_id", None, "This process's id in a multi-process study (or env VMAPTRAIN_PROCESS_ID)."
    )


# Flags whose text is parsed into a config value (per-run lists, integer lists).
_PARSED = {
    "lr": _floats,
    "wd": _floats,
    "momentum": _floats,
    "label_smoothing": _floats,
    "poke_step": _ints,
    "poke_index": _ints,
    "snapshot_epochs": lambda text: tuple(_as_list(_ints(text))) if text.strip() else (),
}


def study_config(values) -> StudyConfig:
    """The study the flags describe: --recipe's fields, then every flag given explicitly
    (without a recipe, every flag's value, defaults included)."""
    import dataclasses

    from vmaptrain import presets

    fields = {}
    if values.recipe:
        fields = presets.recipe(values.recipe)
    for field in dataclasses.fields(StudyConfig):
        name = field.name
        if name not in values:
            continue
        if values.recipe and name in fields and not values[name].present:
            continue
        value = values[name].value
        fields[name] = _PARSED[name](value) if name in _PARSED else value
    if isinstance(fields.get("epochs"), float) and fields["epochs"].is_integer():
        fields["epochs"] = int(fields["epochs"])
    return StudyConfig(**fields)


def train_seeds(values) -> None:
    from vmaptrain import distributed
    from vmaptrain.study import SeedStudy

    config = study_config(values)  # validate flags before joining other processes
    try:
        distributed.initialize(values.coordinator_address, values.num_processes, values.process_id)
    except (KeyError, ValueError, RuntimeError) as err:
        raise StudyError(f"cannot join the multi-process study: {err}") from None
    result = SeedStudy(config).run(values.workdir, overwrite=values.overwrite)
    s = result.summary
    import jax

    if jax.process_index() != 0:
        return
    print(
        json.dumps(
            {
                k: s[k]
                for k in ("runs", "runs_diverged", "accuracy_mean", "accuracy_std", "accuracy_min", "accuracy_max")
            }
        )
    )


def parse_flags(argv: list[str]) -> list[str]:
    """absl's parser with the binaries' error contract: one 'error: …' line, exit status 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        fail(f"{str(err).rstrip('.')} (see --helpshort)")


def reject_extra_args(argv) -> None:
    if len(argv) > 1:
        fail(f"unexpected positional arguments: {' '.join(argv[1:])}")


def fail(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.exit(2)


def run_or_exit(action) -> None:
    """Run `action`; a user error becomes one 'error: …' line and exit status 2."""
    from absl import logging

    from vmaptrain.checkpoint import CheckpointError
    from vmaptrain.data import DataError
    from vmaptrain.study import StudyInterrupted

    logging.set_verbosity(logging.WARNING)  # keep stderr for progress and errors
    try:
        action()
    except (StudyError, DataError, CheckpointError) as err:
        fail(str(err))
    except StudyInterrupted as err:
        sys.stderr.write(f"error: {err}\n")
        sys.exit(143)  # 128 + SIGTERM, as a shell reports a terminated job
    except OSError as err:  # disk full, permissions, … while writing outputs
        fail(f"{err.strerror or err}{': ' + err.filename if getattr(err, 'filename', None) else ''}")


def define_figure_flags() -> None:
    """Flags of the figure binaries (experiments/<figure>.py); defined once per process."""
    if "scale" in flags.FLAGS:
        return
    flags.DEFINE_string("workdir", None, "Where the figure's studies, report.json and PNGs go (resumable).")
    flags.DEFINE_string("scale", "smoke", "smoke (seconds, tests) | cpu (minutes on 2 cores) | paper (GPU)")
    flags.DEFINE_string("dataset", None, "Override the scale's dataset.")
    flags.DEFINE_integer("num_seeds", None, "Override the scale's runs per study.")
    flags.DEFINE_float("width", None, "Override the scale's width multiplier.")
    flags.DEFINE_string(
        "studies_dir",
        None,
        "Where the studies go (default: the workdir); figures given the same directory share identical studies.",
    )
    flags.mark_flag_as_required("workdir")


def run_figure(name: str, values) -> None:
    from vmaptrain import replicate

    scale = replicate.scale_named(values.scale).with_changes(
        dataset=values.dataset, num_seeds=values.num_seeds, width=values.width
    )
    report = replicate.run_figure(name, values.workdir, scale, studies=values.studies_dir)
    print(f"{name} ({scale.name} scale): report.json and {', '.join(report['figures'])} in {values.workdir}")


def figure_main(name: str):
    """The whole main() of a figure binary."""

    def main(argv):
        reject_extra_args(argv)
        run_or_exit(lambda: run_figure(name, flags.FLAGS))

    return main
