"""Figures of a connectivity report (PNG bytes; matplotlib's Agg backend, no display)."""

from __future__ import annotations

import io

import numpy as np

COLORS = {
    "naive": "#999999",
    "naive_reset": "#c7a76b",
    "aligned": "#d9534f",
    "aligned_reset": "#3b6ea8",
    "aligned_repair": "#2e9e5b",
    "wm_aligned": "#e89c3f",
    "wm_aligned_reset": "#8e5bb5",
}


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curves_png(report: dict) -> bytes:
    plt = _plt()
    widths = list(report["widths"])
    alphas = np.asarray(report["alphas"])
    fig, axes = plt.subplots(2, len(widths), figsize=(4.2 * len(widths), 6.5), dpi=100, squeeze=False)
    for col, width in enumerate(widths):
        entry = report["widths"][width]
        for row, metric in enumerate(("test_acc", "test_loss")):
            ax = axes[row, col]
            for cond, by_metric in entry["curves"].items():
                values = np.asarray(by_metric[metric]) * (100 if metric.endswith("acc") else 1)
                ax.plot(alphas, values.mean(0), color=COLORS.get(cond), label=cond, linewidth=2)
                ax.fill_between(alphas, values.min(0), values.max(0), color=COLORS.get(cond), alpha=0.15)
            ax.set_xlabel("α")
            ax.set_ylabel("test accuracy (%)" if metric.endswith("acc") else "test loss")
            ax.set_title(f"width ×{width}: {len(entry['pairs'])} pairs (mean, min–max)")
    axes[0, 0].legend(fontsize=8)
    return _png(fig)


def barrier_vs_width_png(report: dict) -> bytes:
    plt = _plt()
    widths = list(report["widths"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for ax, metric, scale_by, label in (
        (axes[0], "test_acc", 100, "midpoint test-accuracy barrier (points)"),
        (axes[1], "test_loss", 1, "midpoint test-loss barrier"),
    ):
        for cond in report["conditions"]:
            means = [
                report["widths"][w]["barrier_summary"][cond][metric]["midpoint"]["mean"] * scale_by for w in widths
            ]
            stds = [report["widths"][w]["barrier_summary"][cond][metric]["midpoint"]["std"] * scale_by for w in widths]
            ax.errorbar(
                [float(w) for w in widths], means, yerr=stds, marker="o", capsize=3, color=COLORS.get(cond), label=cond
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("width multiplier")
        ax.set_ylabel(label)
        ax.axhline(0, color="black", linewidth=0.5)
    axes[0].legend(fontsize=8)
    return _png(fig)


def variance_png(report: dict) -> bytes:
    plt = _plt()
    widths = list(report["widths"])
    fig, axes = plt.subplots(1, len(widths), figsize=(4.2 * len(widths), 3.8), dpi=100, squeeze=False)
    for ax, width in zip(axes[0], widths):
        entry = report["widths"][width]
        for cond, ratios in entry["variance_ratio_midpoint"].items():
            ax.plot(np.arange(1, len(ratios) + 1), ratios, marker=".", color=COLORS.get(cond), label=cond)
        ax.set_yscale("log")
        ax.set_xlabel("preactivation layer (conv output, input → output)")
        ax.set_ylabel("R_ℓ at α = ½")
        ax.set_title(f"variance collapse, width ×{width}")
    axes[0, 0].legend(fontsize=7)
    return _png(fig)


def instability_png(report: dict) -> bytes:
    plt = _plt()
    inst = report["instability"]
    steps = inst["spawn_steps"]
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=100)
    for metric, label in (("test_acc", "test error"), ("train_acc", "train error")):
        values = [100 * np.asarray(inst["by_step"][str(k)]["barriers"][metric]["max_minus_mean"]) for k in steps]
        ax.errorbar(
            steps, [v.mean() for v in values], yerr=[v.std() for v in values], marker="o", capsize=3, label=label
        )
    ax.axhline(2, color="black", linestyle="--", linewidth=0.8, label="2% (Frankle et al.'s 'stable')")
    linthresh = max(1, min(k for k in steps if k > 0) if any(steps) else 1)
    ax.set_xscale("symlog", linthresh=linthresh)
    ax.set_xlim(-0.2 * linthresh, 1.3 * max(max(steps), 1))  # no empty negative half
    ax.set_xlabel(f"spawn step k (of {inst['total_steps']})")
    ax.set_ylabel("instability: error barrier (points)")
    ax.set_title(f"children differ in {inst['noise']}")
    ax.legend(fontsize=8)
    return _png(fig)


def figures(report: dict) -> dict:
    out = {
        "connectivity_curves.png": curves_png(report),
        "connectivity_barrier_vs_width.png": barrier_vs_width_png(report),
        "connectivity_variance.png": variance_png(report),
    }
    if "instability" in report:
        out["connectivity_instability.png"] = instability_png(report)
    return out
