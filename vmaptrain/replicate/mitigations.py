"""Summers & Dinneen §5: two ways to reduce run-to-run variability at no extra training cost.

- Test-time augmentation: the final weights of one study (the "single model" baseline)
  evaluated on crops — every window of a P-pixel pad at stride 1 (S&D's crop81 for P = 4)
  and at stride 2 (crop25, when P is even) — and, if the runs trained with flips, on mirrors
  and mirrored crops. P is the training translate (1 if none).
- Accelerated (snapshot) ensembles: a second study whose schedule restarts every E/K epochs
  (K cycles, same total length); each run's prediction is the mean of its K end-of-cycle logits.

For each method: accuracy std, cross-entropy std, disagreement, logit correlation and 2-model
ensemble gain across runs, and the "variability reduction" (mean relative reduction of the five,
1 − corr for the correlation; Summers & Dinneen 2021 §5, docs/statistics.md §12). Combinations of
the two are not run here: TTA of every snapshot would need each snapshot's weights.
"""

from __future__ import annotations

import math
import os

import jax
import numpy as np

from vmaptrain import tta
from vmaptrain.estimators import report as estimator_report
from vmaptrain.estimators.diversity import VARIABILITY_METRICS, variability_reduction
from vmaptrain.replicate.common import percent, run_study, write_report
from vmaptrain.study import final_variables

CYCLES = {"smoke": 2, "cpu": 4, "paper": 4}
PAPER = {  # ResNet-14, CIFAR-10, 100 runs, 500 epochs (Summers & Dinneen 2021, §5 and Table 2)
    "single": {
        "accuracy_std": 0.0026,
        "ce_std": 0.0072,
        "disagreement": 0.107,
        "logit_corr": 0.871,
        "ensemble_delta": 0.0182,
    },
    "reduction": {
        "snapshot_ensemble": 0.48,
        "flip": 0.21,
        "crop25": 0.16,
        "crop81": 0.21,
        "flip_crop25": 0.33,
        "flip_crop81": 0.37,
        "snapshot_ensemble+flip": 0.58,
        "snapshot_ensemble+flip_crop81": 0.61,
    },
    "setting": "Summers & Dinneen 2021, ResNet-14 CIFAR-10, 5 cycles of 100 epochs; TTA crops pad 4",
}
NUMBERS = ("accuracy_mean",) + VARIABILITY_METRICS


def tta_methods(config) -> dict[str, str]:
    """Method label → tta view set, for the single-model study's configuration."""
    pad = config.translate or 1
    crops = {f"crop{(2 * pad + 1) ** 2}": f"crop:{pad}:1"}
    if pad % 2 == 0:
        crops[f"crop{(pad + 1) ** 2}"] = f"crop:{pad}:2"
    methods = dict(crops)
    if config.flip != "none":
        methods["flip"] = "flip"
        methods.update({f"flip_{label}": f"flip_{views}" for label, views in crops.items()})
    return methods


def tta_logits(model, variables, images: np.ndarray, views: str, batch: int) -> np.ndarray:
    """[runs, n, k] logits of every run (stacked `variables`) under a tta view set."""
    one = jax.jit(lambda v, x: tta.tta_logits(lambda y: model.apply(v, y, train=False), x, views))
    runs = jax.tree.leaves(variables)[0].shape[0]
    out = []
    for r in range(runs):
        run = jax.tree.map(lambda a: a[r], variables)
        out.append(np.concatenate([np.asarray(one(run, images[s : s + batch])) for s in range(0, len(images), batch)]))
    return np.stack(out).astype(np.float32)


def numbers(labels, logits) -> dict:
    rep = estimator_report(labels, logits=logits, bootstrap=0)
    return {k: rep.get(k) for k in NUMBERS}


def run(workdir: str, scale, progress: bool = True, studies: str | None = None) -> dict:
    from vmaptrain.data import load_dataset, normalize

    del studies  # the baseline's final weights are kept beside it, so it is never shared
    cycles = CYCLES.get(scale.name, 4)
    epochs = cycles * math.ceil(scale.long_epochs / cycles)
    single = scale.config(epochs=epochs)
    variables, result = final_variables(single, os.path.join(workdir, f"single_{epochs:04d}"))
    labels = np.asarray(result.labels)
    rows = {"single": numbers(labels, result.logits)}
    views = tta_methods(single)
    data = load_dataset(single.dataset, data_dir=single.data_dir, manual_dir=single.manual_dir)
    images = normalize(data.x_test, data.mean, data.std)
    for label, view_set in views.items():
        rows[label] = numbers(
            labels, tta_logits(result.spec.model, variables, images, view_set, single.eval_batch_size)
        )
    per_cycle = epochs // cycles
    ensemble = scale.config(
        epochs=epochs, schedule_cycles=cycles, snapshot_epochs=tuple(per_cycle * (c + 1) for c in range(cycles))
    )
    snapshots = run_study(workdir, f"snapshot_{epochs:04d}_x{cycles}", ensemble, progress).snapshots
    rows["snapshot_ensemble"] = numbers(labels, np.mean([snapshots[e] for e in sorted(snapshots)], axis=0))
    for label, row in rows.items():
        row["variability_reduction"] = None if label == "single" else variability_reduction(rows["single"], row)

    methods = [m for m in rows if m != "single"]

    def bars(fig):
        ax = fig.add_subplot()
        x = np.arange(len(methods))
        ax.bar(x - 0.2, percent([rows[m]["variability_reduction"]["mean"] for m in methods]), 0.4, label="ours")
        paper = [PAPER["reduction"].get(m) for m in methods]
        ax.bar(x + 0.2, percent(paper), 0.4, label="Summers & Dinneen (ResNet-14, CIFAR-10)")
        ax.set_xticks(x, methods, rotation=20, fontsize=8)
        ax.set_ylabel("variability reduction (%)")
        ax.axhline(0, color="k", lw=0.5)
        ax.legend(fontsize=8)

    report = {
        "figure": "mitigations",
        "scale": scale.name,
        "epochs": epochs,
        "cycles": cycles,
        "tta_views": views,
        "methods": rows,
        "paper": PAPER,
    }
    return write_report(workdir, report, {"mitigations.png": bars})
