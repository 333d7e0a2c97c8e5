"""What every figure shares: studies in sub-workdirs, the per-study numbers, report + PNG writing."""

from __future__ import annotations

import io
import os

import numpy as np

from vmaptrain import store
from vmaptrain.config import StudyConfig
from vmaptrain.estimators import to_json

REPORT = "report.json"
CLAIM = "figure.json"


def claim(workdir: str, figure: str, scale) -> None:
    """Record which figure and scale own `workdir`; refuse a workdir of anything else."""
    import dataclasses

    from vmaptrain.config import StudyError

    wanted = to_json({"figure": figure, "scale": dataclasses.asdict(scale)})
    path = os.path.join(workdir, CLAIM)
    if os.path.exists(os.path.join(workdir, "config.json")):
        raise StudyError(f"{workdir} is a study workdir, not a figure's; use another --workdir")
    if os.path.exists(path):
        try:
            saved = store.read_json(path)
        except (OSError, ValueError) as err:
            raise StudyError(f"{path} is unreadable ({err}); use another --workdir") from None
        if saved != wanted:
            fields = [k for k in ("figure",) if saved.get(k) != wanted[k]] + [
                f"scale.{k}" for k in wanted["scale"] if (saved.get("scale") or {}).get(k) != wanted["scale"][k]
            ]
            raise StudyError(
                f"workdir {workdir} holds another figure or scale (differs in {', '.join(fields)}); "
                f"use another --workdir"
            )
        return
    try:
        os.makedirs(workdir, exist_ok=True)
        store.write_json(path, wanted)
    except OSError as err:
        raise StudyError(f"cannot write to workdir {workdir}: {err.strerror or err}") from None


def run_study(workdir: str, name: str, config: StudyConfig, progress: bool):
    """Train (or resume, or read back) the study `name` under `workdir`."""
    from vmaptrain.study import SeedStudy

    return SeedStudy(config).run(os.path.join(workdir, name), progress=progress)


def finished(result) -> np.ndarray:
    return np.asarray([r["status"] == "finished" for r in result.runs])


def predictions(result) -> np.ndarray:
    """[finished runs, n] argmax predictions."""
    return np.asarray(result.logits)[finished(result)].argmax(-1)


def accuracies(result) -> np.ndarray:
    return (predictions(result) == np.asarray(result.labels)[None]).mean(axis=1)


def study_numbers(result, epochs: int | None = None) -> dict:
    """The per-study numbers a figure reports (estimator keys as in `estimators.report`)."""
    est = result.summary.get("estimators") or {}
    keys = (
        "accuracy_mean",
        "accuracy_std",
        "accuracy_min",
        "accuracy_max",
        "indep_errors_std",
        "binomial_std",
        "dist_var",
        "dist_std",
        "dist_var_ci95",
        "split_half_corr",
        "top_quarter_gain",
        "disagreement",
        "error_rate",
        "ce_std",
        "logit_corr",
        "ensemble_delta",
    )
    numbers = {"runs": result.summary["runs"], "runs_diverged": result.summary["runs_diverged"]}
    if epochs is not None:
        numbers["epochs"] = epochs
    numbers.update({k: est.get(k) for k in keys})
    numbers["accuracies"] = accuracies(result)
    return numbers


def disagreement(preds_a: np.ndarray, preds_b: np.ndarray) -> float:
    return float(np.mean(preds_a != preds_b))


def write_report(workdir: str, report: dict, figures: dict) -> dict:
    """report.json (NaN → null) and one PNG per `figures[name](fig)` drawing function."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(workdir, exist_ok=True)
    report = to_json(dict(report, figures=sorted(figures)))
    for name, draw in figures.items():
        fig = plt.figure(figsize=(6.4, 4.2), dpi=100)
        draw(fig)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        store.write_bytes(os.path.join(workdir, name), buffer.getvalue())
    store.write_json(os.path.join(workdir, REPORT), report)  # last: its presence means complete
    return report


def percent(values) -> np.ndarray:
    return 100 * np.asarray([np.nan if v is None else v for v in values], np.float64)
