"""Fig. 6 / Theorem 3: the 511 binary tasks of 10 classes, observed std vs √(err/(2n))."""

from __future__ import annotations

import numpy as np

from vmaptrain.config import StudyError
from vmaptrain.replicate.common import run_study, write_report

PAPER = {"num_tasks": 511, "r2": 0.996, "setting": "ResNet-9, CIFAR-10, 64 epochs"}


def run(workdir: str, scale, progress: bool = True, studies: str | None = None) -> dict:
    studies = studies or workdir
    result = run_study(studies, f"epochs_{scale.long_epochs:04d}", scale.config(), progress)
    tasks = (result.summary.get("estimators") or {}).get("binary_tasks")
    if tasks is None:
        raise StudyError("binary_tasks needs a 10-class dataset and ≥ 2 finished runs")

    def scatter(fig):
        ax = fig.add_subplot()
        predicted, observed = 100 * np.asarray(tasks["predicted_std"]), 100 * np.asarray(tasks["observed_std"])
        ax.scatter(predicted, observed, s=6)
        top = max(predicted.max(), observed.max()) * 1.05
        ax.plot([0, top], [0, top], "k--", lw=0.5)
        ax.set_xlabel("predicted std √(err/2n) (%)")
        ax.set_ylabel("observed std over runs (%)")
        ax.set_title(f"{tasks['num_tasks']} binary tasks, R² = {tasks['r2']:.3f}")

    report = {
        "figure": "binary_tasks",
        "scale": scale.name,
        "epochs": scale.long_epochs,
        "runs": result.summary["runs_finished"],
        "tasks": tasks,
        "paper": PAPER,
    }
    return write_report(workdir, report, {"binary_tasks.png": scatter})
