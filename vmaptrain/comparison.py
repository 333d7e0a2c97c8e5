"""Comparing studies: the arms read from workdirs or .npy files, checked to share one test set, and
compare.json + compare.png written (the statistics are `vmaptrain.estimators.comparison`).

    vmaptrain.comparison.compare_studies("workdirs/lr005", "workdirs/lr01", out="cmp")
    vmaptrain.comparison.compare_study_arms("workdirs/lr_sweep", arms_by="lr", out="cmp")
"""

from __future__ import annotations

import os

import numpy as np

from vmaptrain import store
from vmaptrain import workdir as workdirs
from vmaptrain.config import StudyError
from vmaptrain.estimators import comparison
from vmaptrain.estimators.errors import EstimatorInputError

JSON_NAME = "compare.json"
FIGURE_NAME = "compare.png"
# runs.json fields that describe a run's outcome, not its configuration: never an arm.
_OUTCOME_FIELDS = ("index", "test_accuracy", "final_train_loss", "status")


class FinishedStudy:
    """A finished workdir's test labels, logits (memory-mapped), config and runs."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        if not os.path.exists(os.path.join(workdir, "summary.json")):
            raise StudyError(f"{workdir} holds no finished study (no summary.json); train it first")
        try:
            self.labels = np.load(os.path.join(workdir, "labels.npy"), allow_pickle=False)
            self.logits = np.load(os.path.join(workdir, "logits.npy"), mmap_mode="r", allow_pickle=False)
            self.config = store.read_json(os.path.join(workdir, "config.json"))["config"]
            self.runs = store.read_json(os.path.join(workdir, "runs.json"))
        except (OSError, ValueError, KeyError) as err:
            raise workdirs.damaged(workdir, err) from None
        if self.logits.ndim != 3 or len(self.runs) != self.logits.shape[0] or self.logits.shape[1] != len(self.labels):
            raise workdirs.damaged(workdir, f"logits {self.logits.shape} for {len(self.runs)} runs")

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[2])


def check_same_test_set(first: FinishedStudy, second: FinishedStudy) -> None:
    """Refuses two studies that were not evaluated on one test set: another dataset, test size,
    labels or number of classes."""
    where = f"{first.workdir} and {second.workdir}"
    if first.config.get("dataset") != second.config.get("dataset"):
        raise StudyError(
            f"{where} were trained on different datasets ({first.config.get('dataset')} vs "
            f"{second.config.get('dataset')}); a comparison needs one test set"
        )
    if first.labels.shape != second.labels.shape:
        raise StudyError(f"{where} have test sets of {len(first.labels)} and {len(second.labels)} examples")
    if not np.array_equal(first.labels, second.labels):
        raise StudyError(f"{where} have different test labels; a comparison needs one test set")
    if first.num_classes != second.num_classes:
        raise StudyError(f"{where} have {first.num_classes} and {second.num_classes} classes")


def compare_studies(
    workdir_a: str,
    workdir_b: str,
    *,
    delta: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    single_run: bool = False,
    out: str | None = None,
) -> dict:
    """Study A against study B (two finished workdirs on one test set); writes compare.json and
    compare.png into `out` when given."""
    first, second = FinishedStudy(workdir_a), FinishedStudy(workdir_b)
    check_same_test_set(first, second)
    result = _compared(first.labels, first.logits, second.logits, delta, alpha, power, single_run)
    result["studies"] = {"A": workdir_a, "B": workdir_b}
    return _written(result, out)


def compare_files(
    labels_path: str,
    logits_a: str,
    logits_b: str,
    *,
    delta: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    single_run: bool = False,
    out: str | None = None,
) -> dict:
    """Two arms stored as .npy files, [R, n, k] logits or [R, n] predictions, with [n] labels."""
    from vmaptrain.estimators.files import load_array

    def read(path: str, what: str) -> np.ndarray:
        return _statistics(lambda: load_array(path, what))

    labels = np.asarray(read(labels_path, "labels"))
    arm_a, arm_b = read(logits_a, "arm A"), read(logits_b, "arm B")
    result = _compared(labels, arm_a, arm_b, delta, alpha, power, single_run)
    result["files"] = {"labels": labels_path, "A": logits_a, "B": logits_b}
    return _written(result, out)


def run_fields(run: dict) -> dict:
    """A runs.json row's configuration as flat dotted names (`hyperparameters.lr`, `seeds.init`, …)."""
    flat = {}
    for key, value in run.items():
        if key in _OUTCOME_FIELDS:
            continue
        if isinstance(value, dict):
            flat.update({f"{key}.{inner}": inner_value for inner, inner_value in value.items()})
        else:
            flat[key] = value
    return flat


def arms_of(runs: list[dict], arms_by: str) -> dict[str, list[int]]:
    """Run indices per distinct value of one per-run field (`lr` or `hyperparameters.lr`, `seeds.init`, …)."""
    rows = [run_fields(run) for run in runs]
    matches = [name for name in rows[0] if name == arms_by or name.endswith("." + arms_by)] if rows else []
    varying = sorted(name for name in (rows[0] if rows else {}) if len({repr(row[name]) for row in rows}) > 1)
    if len(matches) != 1:
        raise StudyError(
            f"--arms_by={arms_by}: no such per-run field; the fields that differ between this study's runs are "
            f"{', '.join(varying) or 'none'}"
        )
    field = matches[0]
    arms: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        value = row[field]
        label = f"{arms_by}={value:g}" if isinstance(value, float) else f"{arms_by}={value}"
        arms.setdefault(label, []).append(index)
    if len(arms) < 2:
        raise StudyError(
            f"--arms_by={arms_by}: every run has the same value, so there is one arm; the fields that differ "
            f"between runs are {', '.join(varying) or 'none'}"
        )
    return arms


def compare_study_arms(
    workdir: str,
    arms_by: str,
    *,
    delta: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    single_run: bool = False,
    out: str | None = None,
) -> dict:
    """One study's arms (runs grouped by a per-run field, e.g. an lr sweep): every arm against the
    best, Holm-adjusted, with each arm's distribution-wise std."""
    study = FinishedStudy(workdir)
    arms = arms_of(study.runs, arms_by)
    counts = {
        name: _statistics(
            lambda indices=indices, name=name: comparison.count_correct(
                study.labels, study.logits[np.asarray(indices)], name
            )
        )
        for name, indices in arms.items()
    }
    result = _statistics(
        lambda: comparison.compare_arm_counts(counts, delta=delta, alpha=alpha, power=power, single_run=single_run)
    )
    result["study"] = workdir
    result["arms_by"] = arms_by
    result["runs_per_arm"] = arms
    result["run_accuracy"] = {name: arm.run_accuracy.tolist() for name, arm in counts.items()}
    return _written(result, out)


def _statistics(action):
    """Runs an estimator step; malformed arrays become the binaries' StudyError (one line)."""
    try:
        return action()
    except EstimatorInputError as err:
        raise StudyError(" ".join(str(err).splitlines())) from None


def _compared(labels, arm_a, arm_b, delta, alpha, power, single_run) -> dict:
    """Two arms' comparison, with their per-run accuracies (for the figure and the JSON)."""
    counts = [
        _statistics(lambda arm=arm, name=name: comparison.count_correct(labels, arm, name))
        for name, arm in (("A", arm_a), ("B", arm_b))
    ]
    result = _statistics(
        lambda: comparison.compare_counts(*counts, delta=delta, alpha=alpha, power=power, single_run=single_run)
    )
    result["run_accuracy"] = {name: arm.run_accuracy.tolist() for name, arm in zip("AB", counts)}
    return result


def _written(result: dict, out: str | None) -> dict:
    """compare.json and compare.png in `out` (each replaced atomically, the figure first, so an
    existing compare.json is only replaced by a complete new comparison)."""
    if out is not None:
        from vmaptrain.estimators.comparison_plot import comparison_png

        try:
            figure = comparison_png(result, {name: np.asarray(acc) for name, acc in result["run_accuracy"].items()})
            os.makedirs(out, exist_ok=True)
            store.write_bytes(os.path.join(out, FIGURE_NAME), figure)
            store.write_json(os.path.join(out, JSON_NAME), result)
        except OSError as err:
            raise StudyError(f"cannot write the comparison to {out}: {err.strerror or err}") from None
    return result
