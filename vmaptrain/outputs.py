"""What a finished study leaves in its workdir, and the versions it records."""

from __future__ import annotations

import io
import os
import platform

import numpy as np

from vmaptrain import store

FILES = ("config.json", "logits.npy", "labels.npy", "runs.json", "summary.json", "accuracy_hist.png")


def versions() -> dict:
    import flax
    import jax
    import jaxlib
    import optax

    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "backend": jax.default_backend(),
        "device": jax.devices()[0].device_kind,
        "device_count": jax.device_count(),
        "machine": platform.machine(),
    }


def accuracy_summary(accuracies: np.ndarray, statuses: list[str]) -> dict:
    """Mean, std (ddof=1), min, max over finished runs; diverged runs are counted and excluded."""
    finished = np.asarray([s == "finished" for s in statuses])
    acc = np.asarray(accuracies, np.float64)[finished]
    summary = {
        "runs": int(len(statuses)),
        "runs_finished": int(finished.sum()),
        "runs_diverged": int((~finished).sum()),
        "accuracy_mean": float(acc.mean()) if acc.size else float("nan"),
        "accuracy_std": float(acc.std(ddof=1)) if acc.size > 1 else float("nan"),
        "accuracy_min": float(acc.min()) if acc.size else float("nan"),
        "accuracy_max": float(acc.max()) if acc.size else float("nan"),
    }
    return summary


def histogram_png(accuracies: np.ndarray, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    acc = 100 * np.asarray(accuracies, np.float64)
    ax.hist(acc, bins=max(5, min(50, len(acc) // 2)), color="#3b6ea8", edgecolor="white")
    ax.set_xlabel("test accuracy (%)")
    ax.set_ylabel("runs")
    ax.set_title(title)
    if acc.size > 1:
        ax.axvline(
            acc.mean(),
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"mean {acc.mean():.2f}%, std {acc.std(ddof=1):.3f}%",
        )
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def write_results(
    workdir: str, logits: np.ndarray, labels: np.ndarray, runs: list[dict], summary: dict, title: str
) -> None:
    """Write the outputs; summary.json last, so its presence means the study is complete."""
    store.write_npy(os.path.join(workdir, "logits.npy"), logits.astype(np.float16))
    store.write_npy(os.path.join(workdir, "labels.npy"), labels.astype(np.int32))
    store.write_json(os.path.join(workdir, "runs.json"), runs)
    finished = [r["test_accuracy"] for r in runs if r["status"] == "finished"]
    store.write_bytes(os.path.join(workdir, "accuracy_hist.png"), histogram_png(np.asarray(finished), title))
    store.write_json(os.path.join(workdir, "summary.json"), summary)
