"""Fig. 1: the test-accuracy distribution at several training lengths."""

from __future__ import annotations

import numpy as np

from vmaptrain.replicate.common import percent, write_report
from vmaptrain.replicate.sweeps import duration_numbers

PAPER = {
    "epochs": [0, 4, 16, 64],
    "accuracy_std": [0.0187, 0.0056, 0.0019, 0.0015],
    "accuracy_range": [0.132, 0.066, 0.017, 0.014],
    "runs": 60000,
    "setting": "ResNet-9, CIFAR-10",
}


def run(workdir: str, scale, progress: bool = True, studies: str | None = None) -> dict:
    studies = studies or workdir
    rows = duration_numbers(studies, scale, progress)
    for row in rows:
        row["accuracy_range"] = row["accuracy_max"] - row["accuracy_min"]

    def histograms(fig):
        ax = fig.add_subplot()
        for row in rows:
            ax.hist(
                percent(row["accuracies"]),
                bins=max(5, len(row["accuracies"]) // 4),
                alpha=0.6,
                label=f"{row['epochs']} epochs: σ={100 * row['accuracy_std']:.2f}%",
            )
        ax.set_xlabel("test accuracy (%)")
        ax.set_ylabel("runs")
        ax.set_title(f"{scale.recipe} on {scale.dataset}: {scale.num_seeds} runs per length")
        ax.legend(fontsize=8)

    report = {
        "figure": "duration_sweep",
        "scale": scale.name,
        "durations": rows,
        "paper": PAPER,
        "std_decreases_with_training": bool(np.all(np.diff([r["accuracy_std"] for r in rows[1:]]) <= 0)),
    }
    return write_report(workdir, report, {"accuracy_distributions.png": histograms})
