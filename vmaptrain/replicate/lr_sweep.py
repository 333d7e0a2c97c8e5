"""Fig. 8: learning rates as per-run arrays of one study; mean and excess variance per lr, and every
lr compared with the best one (Holm-adjusted, on this test set and on the distribution;
docs/comparison.md)."""

from __future__ import annotations

import numpy as np

from vmaptrain import estimators
from vmaptrain.estimators import comparison
from vmaptrain.replicate.common import finished, percent, run_study, write_report

PAPER = {
    "best_lr": 0.5,
    "std_at_best": 0.00148,
    "std_at_lr_1": 0.00168,
    "dist_var_ratio_lr1_vs_best": 5.0,
    "setting": "ResNet-9, CIFAR-10, 1000 runs per lr",
}


def run(workdir: str, scale, progress: bool = True, studies: str | None = None) -> dict:
    studies = studies or workdir
    per_lr = scale.num_seeds
    lrs = [float(lr) for lr in scale.lrs for _ in range(per_lr)]
    result = run_study(studies, "sweep", scale.config(num_seeds=len(lrs), lr=lrs), progress)
    logits, labels, ok = np.asarray(result.logits), np.asarray(result.labels), finished(result)
    rows, arms = [], {}
    for j, lr in enumerate(scale.lrs):
        members = np.zeros(len(lrs), bool)
        members[j * per_lr : (j + 1) * per_lr] = True
        keep = members & ok
        row = {"lr": lr, "runs": int(members.sum()), "runs_diverged": int((members & ~ok).sum())}
        if keep.sum() >= 2:
            est = estimators.report(labels, logits=logits[keep], bootstrap=200)
            row.update(
                {
                    k: est[k]
                    for k in (
                        "accuracy_mean",
                        "accuracy_std",
                        "indep_errors_std",
                        "dist_var",
                        "dist_var_ci95",
                        "dist_std",
                    )
                }
            )
            arms[f"lr={lr:g}"] = comparison.count_correct(labels, logits[keep], f"lr={lr:g}")
        rows.append(row)
    versus_best = comparison.compare_arm_counts(arms) if len(arms) >= 2 else None

    def curves(fig):
        mean_ax = fig.add_subplot(2, 1, 1)
        std_ax = fig.add_subplot(2, 1, 2, sharex=mean_ax)
        mean_ax.plot(scale.lrs, percent([r.get("accuracy_mean") for r in rows]), "o-")
        mean_ax.set_ylabel("mean accuracy (%)")
        std_ax.plot(scale.lrs, percent([r.get("accuracy_std") for r in rows]), "o-", label="test-set std")
        std_ax.plot(scale.lrs, percent([r.get("dist_std") for r in rows]), "s-", label="distribution-wise std")
        std_ax.set_xscale("log", base=2)
        std_ax.set_xlabel("learning rate")
        std_ax.set_ylabel("std (%)")
        std_ax.legend(fontsize=8)

    means = [r.get("accuracy_mean", -1.0) for r in rows]
    report = {
        "figure": "lr_sweep",
        "scale": scale.name,
        "epochs": scale.long_epochs,
        "runs_per_lr": per_lr,
        "lrs": rows,
        "best_lr": scale.lrs[int(np.argmax(means))],
        "versus_best": versus_best,
        "paper": PAPER,
    }
    return write_report(workdir, report, {"lr_sweep.png": curves})
