"""The comparison figure: each arm's per-run accuracies, and each difference with its Q1 (this test
set) and Q2 (the distribution) intervals side by side (matplotlib object API, Agg canvas)."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

# Per-run points are thinned to this many per arm (evenly spaced by rank).
_MAX_POINTS = 2000


def comparison_png(result: dict, accuracies: dict[str, np.ndarray]) -> bytes:
    """PNG bytes of a two-arm (`compare`) or several-arm (`compare_arms`) result.

    Args:
      result: the comparison dict.
      accuracies: arm name → per-run test accuracies (the arms' order is kept).
    """
    figure = Figure(figsize=(10.0, 4.2), layout="constrained")
    runs_axes, interval_axes = figure.subplots(1, 2, width_ratios=(1.1, 1.0))
    names = list(accuracies)
    for position, name in enumerate(names):
        values = np.sort(np.asarray(accuracies[name])) * 100
        values = values[np.linspace(0, values.size - 1, min(values.size, _MAX_POINTS)).astype(np.int64)]
        # Spread points horizontally by rank: deterministic, and dense arms still show their shape.
        spread = np.linspace(-0.25, 0.25, values.size) if values.size > 1 else np.zeros(1)
        runs_axes.scatter(position + spread, values, s=10, alpha=0.6, linewidths=0)
        runs_axes.hlines(values.mean(), position - 0.35, position + 0.35, color="black", linewidth=1.5)
    runs_axes.set_xticks(range(len(names)), names, rotation=30 if len(names) > 3 else 0, fontsize=8)
    runs_axes.set_ylabel("test accuracy (%)")
    runs_axes.set_title("per-run accuracy (bar: mean)", fontsize=10)

    rows = result["comparisons"] if "comparisons" in result else [{**result, "arm": result["names"][1]}]
    first = result.get("best") or result["names"][0]
    level = round(100 * (1 - result["alpha"]))
    for position, row in enumerate(rows):
        for offset, key, colour, label in (
            (-0.12, "ci95_test_set", "tab:orange", "Q1: this test set"),
            (0.12, "ci95_distribution", "tab:blue", "Q2: the distribution"),
        ):
            low, high = (100 * v for v in row[key])
            interval_axes.errorbar(
                position + offset,
                100 * row["delta"],
                yerr=[[100 * row["delta"] - low], [high - 100 * row["delta"]]],
                fmt="o",
                color=colour,
                capsize=4,
                label=label if position == 0 else None,
            )
    interval_axes.axhline(0, color="gray", linewidth=1, linestyle="--")
    interval_axes.set_xticks(range(len(rows)), [f"{first} − {row['arm']}" for row in rows], fontsize=8)
    interval_axes.set_ylabel("difference in test accuracy (points)")
    interval_axes.set_title(f"{level}% intervals", fontsize=10)
    interval_axes.set_xlim(-0.6, len(rows) - 0.4)
    interval_axes.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
