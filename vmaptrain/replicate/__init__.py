"""The papers' figures as library functions: each trains its studies into sub-workdirs of one
workdir (so it resumes like any study), then writes report.json and PNG figures there.

One module per figure; `scales` fixes sizes (smoke for tests, cpu for a 2-core machine, paper
for GPUs) and `common` the shared study runner and report writer.
"""

from vmaptrain.replicate.scales import SCALES, Scale, scale_named

FIGURES = (
    "duration_sweep",
    "lucky_seeds",
    "independent_errors",
    "distribution_variance",
    "binary_tasks",
    "augmentation",
    "lr_sweep",
    "seed_isolation",
    "poke",
    "mitigations",
)

__all__ = ["FIGURES", "SCALES", "Scale", "scale_named", "run_figure"]


def run_figure(name: str, workdir: str, scale: Scale, progress: bool = True, studies: str | None = None) -> dict:
    """Run one figure's studies and analysis; returns the report that was written.

    Studies go under `studies` (default: `workdir`); figures given the same `studies` directory
    share their identical studies (e.g. the training-length sweep of Figs. 1, 2, 3 and 5).
    """
    import importlib

    if name not in FIGURES:
        raise ValueError(f"unknown figure '{name}'; choose from {', '.join(FIGURES)}")
    from vmaptrain.replicate.common import claim

    module = importlib.import_module(f"vmaptrain.replicate.{name}")
    claim(workdir, name, scale)
    return module.run(workdir, scale, progress=progress, studies=studies)
