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
            self.record = store.read_json(os.path.join(workdir, "config.json"))
            self.config = self.record["config"]
            self.runs = store.read_json(os.path.join(workdir, "runs.json"))
        except (OSError, ValueError, KeyError) as err:
            raise workdirs.damaged(workdir, err) from None
        if self.logits.ndim != 3 or len(self.runs) != self.logits.shape[0] or self.logits.shape[1] != len(self.labels):
            raise workdirs.damaged(workdir, f"logits {self.logits.shape} for {len(self.runs)} runs")

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[2])

    @property
    def finished_runs(self) -> list[int]:
        """Runs that finished; a diverged run (frozen at its last finite weights) is left out, as
        in summary.json."""
        return [i for i, run in enumerate(self.runs) if run.get("status", "finished") == "finished"]

    @property
    def growth(self) -> list[dict]:
        return self.record.get("growth", [])

    def describe(self) -> dict:
        """What compare.json records of the study: where, runs used and left out, its growth."""
        finished = self.finished_runs
        return {
            "workdir": self.workdir,
            "runs": len(finished),
            "diverged_runs_left_out": [i for i in range(len(self.runs)) if i not in set(finished)],
            "growth": self.growth,
        }


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
    """Study A against study B (two finished workdirs on one test set, their finished runs); writes
    compare.json and compare.png into `out` when given."""
    _statistics(lambda: comparison.check_levels(alpha, power, delta))
    first, second = FinishedStudy(workdir_a), FinishedStudy(workdir_b)
    check_same_test_set(first, second)
    arms = [(first.logits, first.finished_runs), (second.logits, second.finished_runs)]
    result = _compared(first.labels, arms, delta, alpha, power, single_run)
    result["studies"] = {"A": first.describe(), "B": second.describe()}
    _note_growth_since(result, out)
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

    _statistics(lambda: comparison.check_levels(alpha, power, delta))
    labels = np.asarray(read(labels_path, "labels"))
    arm_a, arm_b = read(logits_a, "arm A"), read(logits_b, "arm B")
    result = _compared(labels, [(arm_a, None), (arm_b, None)], delta, alpha, power, single_run)
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
    """Run indices per distinct value of one per-run field (`lr` or `hyperparameters.lr`, `poke.step`, …)."""
    rows = [run_fields(run) for run in runs]
    fields = list(rows[0]) if rows else []
    varying = sorted(name for name in fields if len({repr(row[name]) for row in rows}) > 1)
    matches = [name for name in fields if name == arms_by] or [name for name in fields if name.endswith("." + arms_by)]
    if len(matches) > 1:
        raise StudyError(f"--arms_by={arms_by} is ambiguous ({', '.join(matches)}); give the full name")
    if not matches:
        raise StudyError(
            f"--arms_by={arms_by}: no such per-run field; the fields that differ between this study's runs are "
            f"{', '.join(varying) or 'none'}"
        )
    field = matches[0]
    by_value: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_value.setdefault(repr(row[field]), []).append(index)
    if len(by_value) < 2:
        raise StudyError(
            f"--arms_by={arms_by}: every run has the same value, so there is one arm; the fields that differ "
            f"between runs are {', '.join(varying) or 'none'}"
        )
    arms = {}
    for indices in by_value.values():
        value = rows[indices[0]][field]
        short = f"{arms_by}={value:g}" if isinstance(value, float) else f"{arms_by}={value}"
        arms[short if short not in arms else f"{arms_by}={value!r}"] = indices  # values that print alike stay apart
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
    """One study's arms (its finished runs grouped by a per-run field, e.g. an lr sweep): every arm
    against the best, Holm-adjusted over all pairs, with each arm's distribution-wise std."""
    _statistics(lambda: comparison.check_levels(alpha, power, delta))
    study = FinishedStudy(workdir)
    finished = set(study.finished_runs)
    arms = {name: [i for i in indices if i in finished] for name, indices in arms_of(study.runs, arms_by).items()}
    empty = [name for name, indices in arms.items() if not indices]
    if empty:
        raise StudyError(f"arm(s) {', '.join(empty)} of {workdir} have no finished run: every run diverged")
    counts = {
        name: _statistics(
            lambda indices=indices, name=name: comparison.count_correct(study.labels, study.logits, name, runs=indices)
        )
        for name, indices in arms.items()
    }
    result = _statistics(
        lambda: comparison.compare_arm_counts(counts, delta=delta, alpha=alpha, power=power, single_run=single_run)
    )
    result["study"] = study.describe()
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


def _compared(labels, arms, delta, alpha, power, single_run) -> dict:
    """Two arms' comparison, with their per-run accuracies (for the figure and the JSON); each arm
    is (array, run indices to use or None for all)."""
    counts = [
        _statistics(lambda arm=arm, runs=runs, name=name: comparison.count_correct(labels, arm, name, runs=runs))
        for name, (arm, runs) in zip("AB", arms)
    ]
    result = _statistics(
        lambda: comparison.compare_counts(*counts, delta=delta, alpha=alpha, power=power, single_run=single_run)
    )
    result["run_accuracy"] = {name: arm.run_accuracy.tolist() for name, arm in zip("AB", counts)}
    return result


def _note_growth_since(result: dict, out: str | None) -> None:
    """Say so when a study grew after an earlier comparison of the same studies in `out`: going on
    until p < α inflates false positives; the honest use is a run count fixed in advance
    (`seeds_needed`, docs/comparison.md §5)."""
    previous_path = os.path.join(out, JSON_NAME) if out else None
    if previous_path is None or not os.path.exists(previous_path):
        return
    try:
        previous = store.read_json(previous_path).get("studies", {})
    except (OSError, ValueError, AttributeError):
        return
    grown = [
        arm
        for arm, now in result["studies"].items()
        if isinstance(previous.get(arm), dict)
        and previous[arm].get("workdir") == now["workdir"]
        and previous[arm].get("runs", now["runs"]) < now["runs"]
    ]
    if grown:
        result["grown_after_comparison"] = grown
        result["verdict"] += (
            f" Study {' and '.join(grown)} grew after an earlier comparison here: growing until p < α inflates"
            " false positives, so trust a run count fixed in advance (seeds_needed)."
        )


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
