"""vmaptrain: many seeds of small convnets trained at once, and what their variance means.

    import vmaptrain
    result = vmaptrain.SeedStudy(dataset="digits", num_seeds=32, epochs=20).run("workdirs/digits")
    vmaptrain.estimators.report(result.labels, logits=result.logits)
    vmaptrain.compare(labels, a=logits_a, b=logits_b)  # is A better than B? (docs/comparison.md)

Submodules load on first use, so `import vmaptrain` stays cheap and never imports TensorFlow.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "SeedStudy": ("vmaptrain.study", "SeedStudy"),
    "StudyResult": ("vmaptrain.study", "StudyResult"),
    "StudyConfig": ("vmaptrain.config", "StudyConfig"),
    "StudyError": ("vmaptrain.config", "StudyError"),
    "compare": ("vmaptrain.estimators.comparison", "compare"),
    "compare_arms": ("vmaptrain.estimators.comparison", "compare_arms"),
    "load_dataset": ("vmaptrain.data", "load_dataset"),
    "make_model": ("vmaptrain.models", "make_model"),
}
_SUBMODULES = (
    "augment",
    "comparison",
    "config",
    "data",
    "estimators",
    "models",
    "optim",
    "outputs",
    "engine",
    "poke",
    "rng",
    "store",
    "study",
    "train",
)


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in _SUBMODULES:
        return importlib.import_module(f"vmaptrain.{name}")
    raise AttributeError(f"module 'vmaptrain' has no attribute '{name}'")


__all__ = sorted(_LAZY) + list(_SUBMODULES)
