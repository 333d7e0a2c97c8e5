"""Figures of a study report (matplotlib object API with the Agg canvas; no pyplot state)."""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

from vmaptrain.estimators.independence import independent_errors_distribution

# Scatter plots of very large studies are thinned to this many points (evenly spaced runs).
_MAX_SCATTER_POINTS = 20_000


def _new_axes(title: str):
    figure = Figure(figsize=(5.5, 4.0), layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title, fontsize=10)
    return figure, axes


def accuracy_histogram(
    run_accuracy: np.ndarray,
    independent_accuracy: np.ndarray,
    independent_pmf: np.ndarray,
    num_examples: int,
    path: str,
) -> None:
    """Histogram of per-run accuracy against the exact independent-errors distribution.

    Both use the same bins on the 1/n accuracy grid, so the line is the expected count per
    bin if errors were independent (Jordan Fig. 3).
    """
    counts = np.rint(np.asarray(run_accuracy) * num_examples).astype(np.int64)
    grid = np.rint(np.asarray(independent_accuracy) * num_examples).astype(np.int64)
    support = grid[independent_pmf > 1e-6 * independent_pmf.max()]
    low = min(counts.min(), support.min()) if support.size else counts.min()
    high = max(counts.max(), support.max()) if support.size else counts.max()
    width = max(1, int(np.ceil((high - low + 1) / 80)))  # at most ~80 bins
    edges = np.arange(low, high + width + 1, width) - 0.5
    observed, _ = np.histogram(counts, edges)
    expected, _ = np.histogram(grid, edges, weights=independent_pmf * counts.size)
    centres = (edges[:-1] + edges[1:]) / 2 / num_examples * 100
    figure, axes = _new_axes(f"Test accuracy over {counts.size} runs")
    axes.bar(centres, observed, width=width / num_examples * 100, color="tab:blue", alpha=0.6, label="observed runs")
    axes.step(centres, expected, where="mid", color="tab:red", label="independent errors (exact)")
    axes.set_xlabel("test accuracy (%)")
    axes.set_ylabel("runs per bin")
    axes.legend(fontsize=8)
    figure.savefig(path, dpi=120)


def split_half_scatter(
    accuracy_even: np.ndarray, accuracy_odd: np.ndarray, correlation: float | None, path: str
) -> None:
    """Accuracy on even-indexed vs odd-indexed test examples, one point per run (Fig. 2)."""
    index = np.linspace(0, accuracy_even.size - 1, min(accuracy_even.size, _MAX_SCATTER_POINTS)).astype(np.int64)
    label = "n/a" if correlation is None else f"{correlation:.3f}"
    figure, axes = _new_axes(f"Split halves, Pearson r = {label}")
    axes.scatter(
        accuracy_even[index] * 100, accuracy_odd[index] * 100, s=4 if index.size > 1000 else 14, alpha=0.3, linewidths=0
    )
    axes.set_xlabel("accuracy on even examples (%)")
    axes.set_ylabel("accuracy on odd examples (%)")
    figure.savefig(path, dpi=120)


def calibration_plot(bins: list, ece: float, path: str) -> None:
    """Cross-fitted reliability diagram of the vote ensemble, classes pooled."""
    used = [b for b in bins if b["count"]]
    confidence = np.array([b["confidence"] for b in used])
    frequency = np.array([b["frequency"] for b in used])
    sizes = np.array([b["count"] for b in used], np.float64)
    figure, axes = _new_axes(f"Class-wise calibration (cross-fitted), CACE = {ece:.4f}")
    axes.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1)
    axes.plot(confidence, frequency, color="tab:blue")
    axes.scatter(confidence, frequency, s=10 + 60 * np.sqrt(sizes / sizes.max()), color="tab:blue")
    axes.set_xlabel("vote fraction of the other half of runs")
    axes.set_ylabel("fraction that truly is the class")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    figure.savefig(path, dpi=120)


def ensemble_curve(curve: list, path: str) -> None:
    """Ensemble accuracy of the first m runs against m (log scale)."""
    sizes = [point["m"] for point in curve]
    figure, axes = _new_axes("Ensemble of the first m runs")
    axes.plot(sizes, [100 * point["vote"] for point in curve], marker="o", label="plurality vote")
    if all(point["logit"] is not None for point in curve):
        axes.plot(sizes, [100 * point["logit"] for point in curve], marker="s", label="logit average")
    axes.set_xscale("log", base=2)
    axes.set_xlabel("ensemble size m")
    axes.set_ylabel("test accuracy (%)")
    axes.legend(fontsize=8)
    figure.savefig(path, dpi=120)


def binary_tasks_plot(predicted_std: list, observed_std: list, r2: float | None, path: str) -> None:
    """Observed std of accuracy on each collapsed binary task vs √(err/2n) (Theorem 3)."""
    predicted = np.asarray(predicted_std) * 100
    observed = np.asarray(observed_std) * 100
    label = "n/a" if r2 is None else f"{r2:.3f}"
    figure, axes = _new_axes(f"{predicted.size} binary tasks, R² = {label}")
    top = max(predicted.max(), observed.max()) * 1.05
    axes.plot([0, top], [0, top], color="gray", linestyle="--", linewidth=1)
    axes.scatter(predicted, observed, s=6, alpha=0.6)
    axes.set_xlabel("predicted std √(err/2n) (%)")
    axes.set_ylabel("observed std over runs (%)")
    figure.savefig(path, dpi=120)


def write_figures(analysis, out_dir: str) -> list[str]:
    """Writes every figure of an `estimators.Analysis` into out_dir; returns the file names."""
    stats, report = analysis.statistics, analysis.report
    accuracy, pmf = independent_errors_distribution(stats.example_correct, stats.num_runs)
    written = {
        "accuracy_histogram.png": lambda p: accuracy_histogram(
            stats.run_accuracy, accuracy, pmf, stats.num_examples, p
        ),
        "split_half.png": lambda p: split_half_scatter(
            stats.run_correct_even / stats.num_even_examples,
            stats.run_correct_odd / (stats.num_examples - stats.num_even_examples),
            report["split_half_corr"],
            p,
        ),
        "calibration.png": lambda p: calibration_plot(report["calibration_bins"], report["calibration_ece"], p),
        "ensemble.png": lambda p: ensemble_curve(report["ensemble_accuracy"], p),
    }
    if report["binary_tasks"] is not None:
        tasks = report["binary_tasks"]
        written["binary_tasks.png"] = lambda p: binary_tasks_plot(
            tasks["predicted_std"], tasks["observed_std"], tasks["r2"], p
        )
    for name, draw in written.items():
        draw(os.path.join(out_dir, name))
    return list(written)
