"""Fig. 5: test-set std vs the unbiased distribution-wise std (Theorem 2) vs training length."""

from __future__ import annotations

from vmaptrain.replicate.common import percent, write_report
from vmaptrain.replicate.sweeps import duration_studies

PAPER = {
    "4_epochs": {"test_set_std": 0.0056, "dist_std": 0.0052},
    "64_epochs": {"test_set_std": 0.0015, "dist_std": 0.00033},
    "setting": "ResNet-9, CIFAR-10",
}


def run(workdir: str, scale, progress: bool = True, studies: str | None = None) -> dict:
    studies = studies or workdir
    rows = []
    for epochs, result in duration_studies(studies, scale, progress).items():
        est = result.summary.get("estimators") or {}
        rows.append(
            {
                "epochs": epochs,
                "test_set_std": est.get("accuracy_std"),
                "dist_var": est.get("dist_var"),
                "dist_std": est.get("dist_std"),
                "dist_var_ci95": est.get("dist_var_ci95"),
                "dist_var_split": est.get("dist_var_split"),
                "indep_errors_std": est.get("indep_errors_std"),
            }
        )

    def stds(fig):
        ax = fig.add_subplot()
        epochs = [max(r["epochs"], 0.5) for r in rows]
        ax.plot(epochs, percent([r["test_set_std"] for r in rows]), "o-", label="test-set std")
        ax.plot(epochs, percent([r["dist_std"] for r in rows]), "s-", label="distribution-wise std (Thm 2)")
        ax.plot(epochs, percent([r["indep_errors_std"] for r in rows]), "k:", label="independent-errors std")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("training epochs (0 drawn at ½)")
        ax.set_ylabel("std of accuracy (%)")
        ax.legend(fontsize=8)

    ratios = [None if not r["test_set_std"] else (r["dist_std"] or 0.0) / r["test_set_std"] for r in rows]
    report = {
        "figure": "distribution_variance",
        "scale": scale.name,
        "durations": rows,
        "dist_over_test_std": ratios,
        "paper": PAPER,
    }
    return write_report(workdir, report, {"distribution_std.png": stds})
