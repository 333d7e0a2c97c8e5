"""Fig. 7 / §4.2: is low variance a matter of accuracy? No augmentation on all the data vs the
recipe's augmentation on a fraction of it, at about the same mean accuracy: the variance ratio.

The reduced training sets are fixed random subsets (numpy seed 0) written as npz files next to
the studies, so they are part of each study's config. Their normalisation constants are their
own pixel statistics.
"""

from __future__ import annotations

import os

import numpy as np

from vmaptrain import store
from vmaptrain.replicate.common import percent, run_study, study_numbers, write_report

NO_AUGMENTATION = dict(flip="none", translate=0, cutout=0)
FRACTIONS = {"smoke": (0.5,), "cpu": (0.25, 0.5), "paper": (0.2,)}
PAPER = {
    "accuracy_mean_both": 0.875,
    "variance_ratio_no_aug_over_reduced": 3.5,
    "ensemble_accuracy": {"no_aug": 0.912, "reduced_data": 0.898},
    "setting": "ResNet-9, CIFAR-10; augmented runs see 20% of the training set",
}


def augmentation_of(config) -> dict:
    """The recipe's augmentation; a recipe without one gets a 1-pixel translate."""
    fields = dict(flip=config.flip, translate=config.translate, cutout=config.cutout)
    return fields if fields != NO_AUGMENTATION else dict(NO_AUGMENTATION, translate=1)


def subset_file(studies: str, dataset: str, fraction: float, data_dir=None, manual_dir=None) -> str:
    from vmaptrain.data import load_dataset

    path = os.path.join(os.path.abspath(studies), f"train_subset_{fraction:.3f}.npz")
    if not os.path.exists(path):
        data = load_dataset(dataset, data_dir=data_dir, manual_dir=manual_dir)
        keep = np.sort(
            np.random.default_rng(0).permutation(len(data.y_train))[: int(round(fraction * len(data.y_train)))]
        )
        os.makedirs(os.path.dirname(path), exist_ok=True)
        store.write_npz(
            path, x_train=data.x_train[keep], y_train=data.y_train[keep], x_test=data.x_test, y_test=data.y_test
        )
    return path


def run(workdir: str, scale, progress: bool = True, studies: str | None = None) -> dict:
    studies = studies or workdir
    base = scale.config()
    config = scale.config(**NO_AUGMENTATION)
    name = f"epochs_{scale.long_epochs:04d}" + ("" if config == base else "_no_aug")  # the sweep's, if equal
    plain = study_numbers(run_study(studies, name, config, progress), scale.long_epochs)
    plain.update(arm="no augmentation, all data", fraction=1.0)
    arms = [plain]
    for fraction in FRACTIONS.get(scale.name, (0.2,)):
        dataset = "npz:" + subset_file(studies, base.dataset, fraction, base.data_dir, base.manual_dir)
        config = scale.config(dataset=dataset, **augmentation_of(base))
        numbers = study_numbers(
            run_study(studies, f"epochs_{scale.long_epochs:04d}_aug_subset_{fraction:.3f}", config, progress),
            scale.long_epochs,
        )
        numbers.update(arm=f"augmentation, {100 * fraction:.0f}% of the data", fraction=fraction)
        arms.append(numbers)
    matched = min(arms[1:], key=lambda a: abs(a["accuracy_mean"] - plain["accuracy_mean"]))
    ratio = (plain["accuracy_std"] / matched["accuracy_std"]) ** 2 if matched["accuracy_std"] else None

    def bars(fig):
        ax = fig.add_subplot()
        names = [a["arm"] for a in arms]
        ax.bar(range(len(arms)), percent([a["accuracy_std"] for a in arms]) ** 2)
        ax.set_xticks(range(len(arms)), names, fontsize=7)
        for k, a in enumerate(arms):
            ax.annotate(f"{100 * a['accuracy_mean']:.2f}%", (k, 0), ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("variance of test accuracy (%²)")
        ax.set_title("mean accuracy at the foot of each bar")

    report = {
        "figure": "augmentation",
        "scale": scale.name,
        "epochs": scale.long_epochs,
        "augmentation": augmentation_of(base),
        "arms": arms,
        "matched_fraction": matched["fraction"],
        "variance_ratio_no_aug_over_matched": ratio,
        "paper": PAPER,
    }
    return write_report(workdir, report, {"augmentation.png": bars})
