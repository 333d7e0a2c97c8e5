"""Flag definitions and error handling shared by the experiment binaries.

Binaries parse flags and call one function here; everything testable lives in the library.
"""

from __future__ import annotations

import dataclasses
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


# How a flag's text becomes a config value, by the field's "flag" metadata (config._field).
_PARSERS = {
    "floats": _floats,
    "ints": _ints,
    "int_list": lambda text: tuple(_as_list(_ints(text))) if text.strip() else (),
}
_DEFINE_BY_TYPE = {
    "str": flags.DEFINE_string,
    "str | None": flags.DEFINE_string,
    "float": flags.DEFINE_float,
    "int": flags.DEFINE_integer,
    "bool": flags.DEFINE_bool,
}


def define_process_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Flags about this process rather than the study (every binary that trains has them)."""
    if "compilation_cache" in flag_values:  # a figure binary and train_seeds in one process
        return
    flags.DEFINE_bool(
        "compilation_cache",
        True,
        "Reuse compiled programs across runs of a command (JAX's persistent cache, private to the user, "
        "split by machine; env VMAPTRAIN_COMPILATION_CACHE=off|DIR).",
        flag_values=flag_values,
    )


def apply_process_flags(values) -> None:
    if not values.compilation_cache:
        from vmaptrain.engine import compilation_cache

        compilation_cache.disable()


def define_study_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """One flag per `StudyConfig` field (name, default and help come from the field), plus
    --recipe and the multi-process flags."""
    for field in dataclasses.fields(StudyConfig):
        help_text, parse = field.metadata["help"], field.metadata["flag"]
        if parse:  # lists and per-run values are given as text
            default = field.default
            text = ",".join(str(v) for v in default) if isinstance(default, tuple) else str(default)
            flags.DEFINE_string(field.name, text, help_text, flag_values=flag_values)
        else:
            _DEFINE_BY_TYPE[field.type](field.name, field.default, help_text, flag_values=flag_values)
    flags.DEFINE_string(
        "recipe",
        None,
        "A named recipe (vmaptrain.presets: small_cnn | resnet9_paper | resnet14_sd | airbench94) setting model, "
        "optimizer, schedule, augmentation, …; flags given explicitly override it.",
        flag_values=flag_values,
    )
    define_process_flags(flag_values)
    flags.DEFINE_string(
        "coordinator_address",
        None,
        "host:port of process 0 for a multi-process study (or env VMAPTRAIN_COORDINATOR).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "num_processes",
        None,
        "Processes in a multi-process study (or env VMAPTRAIN_NUM_PROCESSES).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "process_id",
        None,
        "This process's id in a multi-process study (or env VMAPTRAIN_PROCESS_ID).",
        flag_values=flag_values,
    )


def study_config(values) -> StudyConfig:
    """The study the flags describe: --recipe's fields, then every flag given explicitly
    (without a recipe, every flag's value, defaults included)."""
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
        parse = field.metadata["flag"]
        fields[name] = _PARSERS[parse](value) if parse else value
    if isinstance(fields.get("epochs"), float) and fields["epochs"].is_integer():
        fields["epochs"] = int(fields["epochs"])
    return StudyConfig(**fields)


def train_seeds(values) -> None:
    from vmaptrain.engine import placement
    from vmaptrain.study import SeedStudy

    config = study_config(values)  # validate flags before joining other processes
    apply_process_flags(values)
    try:
        placement.initialize(values.coordinator_address, values.num_processes, values.process_id)
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
    from vmaptrain.engine import hostmem
    from vmaptrain.engine.hooks import StudyInterrupted

    logging.set_verbosity(logging.WARNING)  # keep stderr for progress and errors
    hostmem.prepare_process()  # before any JAX computation of the binary (engine/hostmem.py)
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
    define_process_flags()
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

    apply_process_flags(values)
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
