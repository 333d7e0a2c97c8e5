"""Fig. 2: do lucky seeds generalise? Split-half correlation and top-quarter gain vs training length."""

from __future__ import annotations

import numpy as np

from vmaptrain.replicate.common import predictions, write_report
from vmaptrain.replicate.sweeps import duration_studies

PAPER = {
    "split_half_corr_predicted": {"4": 0.73, "64": 0.027},
    "top_quarter_gain_64": 0.0002,
    "setting": "ResNet-9, CIFAR-10, even/odd halves of the test set",
}


def run(workdir: str, scale, progress: bool = True, studies: str | None = None) -> dict:
    studies = studies or workdir
    studies = duration_studies(studies, scale, progress)
    rows, halves = [], {}
    for epochs, result in studies.items():
        est = result.summary.get("estimators") or {}
        rows.append(
            {
                "epochs": epochs,
                "split_half_corr": est.get("split_half_corr"),
                "top_quarter_gain": est.get("top_quarter_gain"),
                "accuracy_std": est.get("accuracy_std"),
            }
        )
        correct = predictions(result) == np.asarray(result.labels)[None]  # finished runs, as the estimators
        halves[epochs] = (correct[:, 0::2].mean(1), correct[:, 1::2].mean(1))

    def correlation(fig):
        ax = fig.add_subplot()
        ax.plot(
            [r["epochs"] for r in rows],
            [np.nan if r["split_half_corr"] is None else r["split_half_corr"] for r in rows],
            "o-",
        )
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("training epochs")
        ax.set_ylabel("split-half correlation across runs")

    def scatter(fig):
        ax = fig.add_subplot()
        for epochs, (even, odd) in halves.items():
            ax.scatter(100 * even, 100 * odd, s=8, label=f"{epochs} epochs")
        ax.set_xlabel("accuracy on even test examples (%)")
        ax.set_ylabel("accuracy on odd test examples (%)")
        ax.legend(fontsize=8)

    report = {"figure": "lucky_seeds", "scale": scale.name, "durations": rows, "paper": PAPER}
    return write_report(workdir, report, {"split_half_corr.png": correlation, "split_half_scatter.png": scatter})
