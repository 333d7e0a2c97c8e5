"""Same recipe, same result: vmaptrain's accuracy distribution against the PyTorch reference loop.

One recipe, the reference net (`small_cnn`) on Fashion-MNIST: batch 256, Nesterov SGD with lr
0.05, momentum 0.9 and weight decay 5e-4 on every parameter, the lr decayed linearly to 0 per
step, no augmentation. It is trained
- in vmaptrain, through the public API (`vmaptrain.SeedStudy`), once per `--init` convention
  (so what the initialisation alone changes is measured, not guessed);
- in PyTorch eager with torch.nn's defaults (benchmarks/torch_reference.py, in a process of its
  own), the runs one after another.
For every length in `--epochs`, both are summarised side by side from their test predictions:
mean test accuracy ± its standard error, the std across runs (± its standard error), the
independent-errors std (Calibrated Chaos §3.2) and the distribution-wise std (Theorem 2,
docs/statistics.md §3), and each vmaptrain variant's difference of means from PyTorch's with
the standard error of that difference. Printed with the CPU model and written as JSON.

    PYTHONPATH=. python benchmarks/parity.py --num_runs=48 --epochs=2,10
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from vmaptrain import cli, estimators, machine, store  # noqa: E402
from vmaptrain.config import StudyError  # noqa: E402
from vmaptrain.models import INIT_CHOICES  # noqa: E402

FASHION = "idx:/usr/share/datasets/fashion-mnist"
# The recipe: what both sides train (vmaptrain StudyConfig fields).
RECIPE = dict(
    model="small_cnn",
    batch_size=256,
    optimizer="nesterov",
    lr=0.05,
    momentum=0.9,
    wd=5e-4,
    schedule="linear",
    warmup_epochs=0.0,
    flip="none",
    translate=0,
    cutout=0,
)
PYTORCH = "pytorch"

_DATASET = flags.DEFINE_string("dataset", FASHION, "vmaptrain dataset string both sides train on.")
_NUM_RUNS = flags.DEFINE_integer("num_runs", 48, "Runs per side and length.")
_EPOCHS = flags.DEFINE_list("epochs", ["2", "10"], "Training lengths in epochs, comma-separated.")
_INIT = flags.DEFINE_list(
    "init", ["model", "flax"], f"vmaptrain init conventions to train, comma-separated ({', '.join(INIT_CHOICES)})."
)
_OUT = flags.DEFINE_string("out", os.path.join(REPO, "benchmarks", "results", "parity_cpu.json"), "JSON output.")


def parse_epochs(values: list[str]) -> list[int]:
    try:
        epochs = [int(v) for v in values]
    except ValueError:
        raise StudyError(f"--epochs must be whole numbers of epochs, got {','.join(values)}") from None
    if not epochs or any(e < 1 for e in epochs):
        raise StudyError(f"--epochs must be ≥ 1 each, got {','.join(values)}")
    return epochs


def check_inits(inits: list[str]) -> list[str]:
    unknown = [i for i in inits if i not in INIT_CHOICES]
    if unknown or not inits:
        raise StudyError(f"--init: unknown convention(s) {','.join(unknown)}; choose from {', '.join(INIT_CHOICES)}")
    return inits


def accuracy_statistics(predictions: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy distribution of R runs' test predictions [R, n]: mean ± standard error, std
    across runs ± its standard error, independent-errors std and distribution-wise std."""
    correct = np.asarray(predictions) == np.asarray(labels)[None, :]
    num_runs, num_examples = correct.shape
    run_correct, example_correct = correct.sum(axis=1), correct.sum(axis=0)
    accuracy = estimators.accuracy_distribution(run_correct, num_examples)
    independent = estimators.independent_errors_variance(example_correct, num_runs)
    distribution = estimators.distribution_variance(run_correct, example_correct, num_examples)
    return {
        "runs": int(num_runs),
        "accuracy_mean": float(accuracy["mean"]),
        "accuracy_mean_se": float(accuracy["std"] / math.sqrt(num_runs)),
        "accuracy_std": float(accuracy["std"]),
        "accuracy_std_se": float(accuracy["std_se"]),
        "independent_errors_std": float(np.sqrt(independent)),
        "distribution_std": float(estimators.distribution_std(distribution)),
        "distribution_variance": float(distribution),
    }


def difference(stats: dict, reference: dict) -> dict:
    """stats − reference for the mean and the std, each with the standard error of the difference
    of two independent estimates."""
    mean = stats["accuracy_mean"] - reference["accuracy_mean"]
    mean_se = math.hypot(stats["accuracy_mean_se"], reference["accuracy_mean_se"])
    std = stats["accuracy_std"] - reference["accuracy_std"]
    std_se = math.hypot(stats["accuracy_std_se"], reference["accuracy_std_se"])
    return {
        "mean": mean,
        "mean_se": mean_se,
        "mean_z": mean / mean_se if mean_se else None,
        "std": std,
        "std_se": std_se,
    }


def train_vmaptrain(dataset: str, num_runs: int, epochs: int, init: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(predictions [R, n], labels, seconds) of a vmaptrain study of the recipe."""
    import vmaptrain

    start = time.perf_counter()
    study = vmaptrain.SeedStudy(dataset=dataset, num_seeds=num_runs, epochs=epochs, init=init, **RECIPE)
    result = study.run(None, progress=False)
    return np.argmax(result.logits, axis=-1), result.labels, time.perf_counter() - start


def train_pytorch(dataset: str, num_runs: int, epochs: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(predictions [R, n], labels, seconds) of the PyTorch reference loop in its own process."""
    with tempfile.TemporaryDirectory(prefix="parity-") as scratch:
        path = os.path.join(scratch, "predictions.npz")
        command = [
            sys.executable,
            os.path.join(REPO, "benchmarks", "torch_reference.py"),
            f"--dataset={dataset}",
            f"--num_runs={num_runs}",
            f"--epochs={epochs}",
            f"--batch_size={RECIPE['batch_size']}",
            f"--lr={RECIPE['lr']}",
            f"--wd={RECIPE['wd']}",
            f"--momentum={RECIPE['momentum']}",
            f"--predictions={path}",
        ]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines() or ["no output"]
            raise StudyError(f"the PyTorch reference failed ({proc.returncode}): {lines[-1]}")
        with np.load(path) as stored:
            return stored["predictions"], stored["labels"], seconds


def _versus_pytorch(stats: dict, what: str) -> str:
    d = stats.get("minus_pytorch")
    return f"{100 * d[what]:+.3f} ± {100 * d[what + '_se']:.3f}" if d else "—"


# The printed table: a row label and how a side's statistics fill its cell (accuracy points).
ROWS = (
    ("test accuracy mean %", lambda s: f"{100 * s['accuracy_mean']:.3f} ± {100 * s['accuracy_mean_se']:.3f}"),
    ("std across runs %", lambda s: f"{100 * s['accuracy_std']:.3f} ± {100 * s['accuracy_std_se']:.3f}"),
    ("independent-errors std %", lambda s: f"{100 * s['independent_errors_std']:.3f}"),
    ("distribution-wise std %", lambda s: f"{100 * s['distribution_std']:.3f}"),
    ("mean − pytorch (points)", lambda s: _versus_pytorch(s, "mean")),
    ("std − pytorch (points)", lambda s: _versus_pytorch(s, "std")),
    ("wall time s", lambda s: f"{s['wall_s']:.1f}"),
)


def table(epochs: int, sides: dict) -> str:
    """The sides' statistics, one column each."""
    line = lambda label, cells: f"  {label:26s}" + "".join(f"{c:>24s}" for c in cells)
    lines = [line(f"{epochs} epochs", list(sides))]
    lines += [line(label, [cell(s) for s in sides.values()]) for label, cell in ROWS]
    return "\n".join(lines)


def benchmark(dataset: str, num_runs: int, epochs_list: list[int], inits: list[str], out: str) -> dict:
    if num_runs < 2:
        raise StudyError(f"--num_runs must be ≥ 2 (a std needs two runs), got {num_runs}")
    try:
        import torch
    except ImportError:
        raise StudyError("the PyTorch reference needs torch (pip install -e '.[bench]')") from None
    import jax

    from vmaptrain.data import load_dataset

    load_dataset(dataset)  # a bad dataset fails here, before either side trains

    log = lambda message: print(message, flush=True)
    log(f"cpu: {machine.cpu_model()} ({os.cpu_count()} cores); jax {jax.__version__}, torch {torch.__version__}")
    log(f"recipe: {RECIPE}; {dataset}, {num_runs} runs per side")
    report = {
        "command": " ".join(["python"] + sys.argv),
        "cpu_model": machine.cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "torch": torch.__version__,
        "dataset": dataset,
        "recipe": RECIPE,
        "num_runs": num_runs,
        "results": {},
    }
    for epochs in epochs_list:
        sides = {}
        predictions, labels, seconds = train_pytorch(dataset, num_runs, epochs)
        sides[PYTORCH] = {**accuracy_statistics(predictions, labels), "wall_s": seconds}
        log(f"{epochs} epochs: pytorch done in {seconds:.1f} s")
        for init in inits:
            predictions, vm_labels, seconds = train_vmaptrain(dataset, num_runs, epochs, init)
            if not np.array_equal(vm_labels, labels):
                raise StudyError("vmaptrain and the PyTorch reference saw different test labels")
            stats = {**accuracy_statistics(predictions, labels), "wall_s": seconds}
            stats["minus_pytorch"] = difference(stats, sides[PYTORCH])
            sides[f"vmaptrain init={init}"] = stats
            log(f"{epochs} epochs: vmaptrain init={init} done in {seconds:.1f} s")
        log(table(epochs, sides))
        report["results"][str(epochs)] = sides
    store.write_report(out, report)
    log(f"wrote {out}")
    return report


def main(argv) -> None:
    cli.reject_extra_args(argv)
    cli.run_or_exit(
        lambda: benchmark(
            _DATASET.value, _NUM_RUNS.value, parse_epochs(_EPOCHS.value), check_inits(_INIT.value), _OUT.value
        )
    )


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
