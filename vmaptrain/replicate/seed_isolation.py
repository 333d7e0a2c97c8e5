"""Summers & Dinneen / App. D.1: vary all sources of randomness, or only init, order or aug."""

from __future__ import annotations

import numpy as np

from vmaptrain.replicate.common import run_study, study_numbers, write_report

SOURCES = ("all", "init", "order", "aug")
PAPER = {
    "1_epoch": {"std_all": 0.0133, "single_source_less_variance": "25-40%"},
    "4_epochs": {"std_all": 0.0045, "std_init": 0.0038},
    "64_epochs": {"std_all": 0.00160, "std_init": 0.00158},
    "setting": "ResNet-9, CIFAR-10, 4000 runs per distribution (App. D.1)",
}


def run(workdir: str, scale, progress: bool = True, studies: str | None = None) -> dict:
    studies = studies or workdir
    lengths = sorted({e for e in (scale.epochs[0], scale.long_epochs) if e > 0} or {scale.long_epochs})
    rows = []
    for epochs in lengths:
        for source in SOURCES:
            config = scale.config(epochs=epochs, vary=source)
            name = f"epochs_{epochs:04d}" + ("" if source == "all" else f"_vary_{source}")  # "all": the sweep's
            numbers = study_numbers(run_study(studies, name, config, progress), epochs)
            numbers["vary"] = source
            rows.append(numbers)
    for row in rows:
        base = next(r for r in rows if r["epochs"] == row["epochs"] and r["vary"] == "all")
        row["variance_ratio_to_all"] = (
            (row["accuracy_std"] / base["accuracy_std"]) ** 2
            if row["accuracy_std"] is not None and base["accuracy_std"]
            else None
        )

    def bars(fig):
        ax = fig.add_subplot()
        width = 0.8 / len(lengths)
        for k, epochs in enumerate(lengths):
            values = [
                next(r["accuracy_std"] for r in rows if r["epochs"] == epochs and r["vary"] == s) or 0 for s in SOURCES
            ]
            ax.bar(np.arange(len(SOURCES)) + k * width, 100 * np.asarray(values), width, label=f"{epochs} epochs")
        ax.set_xticks(np.arange(len(SOURCES)) + width * (len(lengths) - 1) / 2, [f"vary {s}" for s in SOURCES])
        ax.set_ylabel("std of test accuracy (%)")
        ax.legend(fontsize=8)

    report = {"figure": "seed_isolation", "scale": scale.name, "studies": rows, "paper": PAPER}
    return write_report(workdir, report, {"seed_isolation.png": bars})
