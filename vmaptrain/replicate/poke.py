"""App. D.2 / Fig. 12: disagreement of poked vs unpoked twins vs pairs with different seeds.

Twin j is a study with every stream fixed to seed j (`vary="none"`), so its runs differ only
in their poke: run 0 is never poked, run 1+m is poked (×1.001 on one weight) at poke_steps[m].
Reseeded pairs are the unpoked runs of two different twins. A second set of twins pokes by
one float32 ULP-scale factor (1 + 2⁻²³) at the first poke step.
"""

from __future__ import annotations

import itertools

import numpy as np

from vmaptrain.replicate.common import disagreement, percent, predictions, run_study, write_report

ULP_FACTOR = float(np.nextafter(np.float32(1), np.float32(2)))
PAPER = {
    "128_epochs": {"poke_disagreement": 0.0514, "reseed_disagreement": 0.0519},
    "short_training": {"poke_disagreement": "0.070-0.075", "reseed_disagreement": 0.085},
    "earlier_poke_more_disagreement": True,
    "setting": "ResNet-9, CIFAR-10",
}


def num_twins(scale) -> int:
    return max(2, scale.num_seeds // 4)


def run(workdir: str, scale, progress: bool = True, studies: str | None = None) -> dict:
    studies = studies or workdir
    steps = list(scale.poke_steps)
    twins, ulp_twins = [], []
    for j in range(num_twins(scale)):
        config = scale.config(num_seeds=1 + len(steps), vary="none", fixed_seed=j, poke_step=[-1, *steps])
        twins.append(predictions(run_study(studies, f"twin_{j:03d}", config, progress)))
        config = scale.config(num_seeds=2, vary="none", fixed_seed=j, poke_step=[-1, steps[0]], poke_factor=ULP_FACTOR)
        ulp_twins.append(predictions(run_study(studies, f"ulp_twin_{j:03d}", config, progress)))
    by_step = [
        {"poke_step": s, "disagreement": float(np.mean([disagreement(t[0], t[1 + m]) for t in twins]))}
        for m, s in enumerate(steps)
    ]
    reseed = float(np.mean([disagreement(a[0], b[0]) for a, b in itertools.combinations(twins, 2)]))
    ulp = float(np.mean([disagreement(t[0], t[1]) for t in ulp_twins]))

    def curve(fig):
        ax = fig.add_subplot()
        ax.plot(
            [max(r["poke_step"], 0.5) for r in by_step],
            percent([r["disagreement"] for r in by_step]),
            "o-",
            label="poked vs unpoked twin (×1.001)",
        )
        ax.axhline(100 * reseed, color="k", ls="--", label="different seeds")
        ax.axhline(100 * ulp, color="tab:red", ls=":", label=f"one-ULP poke at step {steps[0]}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("poke step (0 drawn at ½)")
        ax.set_ylabel("test disagreement (%)")
        ax.legend(fontsize=8)

    report = {
        "figure": "poke",
        "scale": scale.name,
        "epochs": scale.long_epochs,
        "twins": len(twins),
        "by_poke_step": by_step,
        "reseed_disagreement": reseed,
        "ulp_factor": ULP_FACTOR,
        "ulp_disagreement": ulp,
        "paper": PAPER,
    }
    return write_report(workdir, report, {"poke.png": curve})
