"""Figs. 3 and 14: the accuracy distribution vs the one independent per-example errors predict."""

from __future__ import annotations

import numpy as np

from vmaptrain.estimators import independent_errors_distribution
from vmaptrain.replicate.common import percent, predictions, write_report
from vmaptrain.replicate.sweeps import duration_studies

PAPER = {
    "64_epochs": {"observed_std": 0.00149, "indep_errors_std": 0.00145},
    "4_epochs": {"observed_std": 0.0056, "indep_errors_std": 0.0022},
    "binomial_overestimate_variance_ratio": 2.5,
    "setting": "ResNet-9, CIFAR-10",
}


def run(workdir: str, scale, progress: bool = True, studies: str | None = None) -> dict:
    studies = studies or workdir
    studies = duration_studies(studies, scale, progress)
    rows = []
    for epochs, result in studies.items():
        est = result.summary.get("estimators") or {}
        rows.append(
            {
                "epochs": epochs,
                "observed_std": est.get("accuracy_std"),
                "indep_errors_std": est.get("indep_errors_std"),
                "binomial_std": est.get("binomial_std"),
            }
        )
    longest = studies[scale.long_epochs]
    labels = np.asarray(longest.labels)
    correct = predictions(longest) == labels[None]
    values, pmf = independent_errors_distribution(correct.sum(0), correct.shape[0])
    observed = correct.mean(1)

    def histogram(fig):
        ax = fig.add_subplot()
        width = 1.0 / len(labels)
        ax.hist(
            100 * observed,
            bins=np.arange(observed.min() - width / 2, observed.max() + width, width) * 100,
            density=True,
            alpha=0.6,
            label=f"{len(observed)} runs",
        )
        ax.plot(100 * values, pmf / (100 * width), "k-", lw=1, label="independent errors (exact)")
        ax.set_xlim(100 * (observed.min() - 5 * width), 100 * (observed.max() + 5 * width))
        ax.set_xlabel("test accuracy (%)")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)

    def predicted_vs_observed(fig):
        ax = fig.add_subplot()
        pred, obs = percent([r["indep_errors_std"] for r in rows]), percent([r["observed_std"] for r in rows])
        ax.scatter(pred, obs)
        for r, x, y in zip(rows, pred, obs):
            ax.annotate(f"{r['epochs']} ep", (x, y), fontsize=8)
        top = np.nanmax(np.concatenate([pred, obs, [0.01]])) * 1.1
        ax.plot([0, top], [0, top], "k--", lw=0.5)
        ax.set_xlabel("independent-errors std (%)")
        ax.set_ylabel("observed std (%)")

    report = {
        "figure": "independent_errors",
        "scale": scale.name,
        "durations": rows,
        "distribution": {
            "epochs": scale.long_epochs,
            "accuracy": values,
            "probability": pmf,
            "mean": float(np.sum(values * pmf)),
            "std": float(np.sqrt(np.sum(pmf * (values - np.sum(values * pmf)) ** 2))),
        },
        "paper": PAPER,
    }
    return write_report(
        workdir,
        report,
        {"accuracy_vs_independent.png": histogram, "predicted_vs_observed_std.png": predicted_vs_observed},
    )
