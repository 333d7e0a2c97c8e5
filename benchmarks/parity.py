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

Each side's test predictions are kept (`--predictions_dir`, one compressed file per side, length
and run count), so the statistics can be recomputed from them, and an interrupted benchmark
resumes: a side whose file exists for the same recipe, dataset and run count is read back, not
retrained (`--retrain` trains every side again).

    PYTHONPATH=. python benchmarks/parity.py --num_runs=48,16 --epochs=2,10 --init=model
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from functools import partial

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
_NUM_RUNS = flags.DEFINE_list(
    "num_runs", ["48", "16"], "Runs per side: one count for every length, or one per length in --epochs."
)
_EPOCHS = flags.DEFINE_list("epochs", ["2", "10"], "Training lengths in epochs, comma-separated.")
_INIT = flags.DEFINE_list(
    "init", ["model"], f"vmaptrain init conventions to train, comma-separated ({', '.join(INIT_CHOICES)})."
)
_OUT = flags.DEFINE_string("out", os.path.join(REPO, "benchmarks", "results", "parity_cpu.json"), "JSON output.")
_PREDICTIONS_DIR = flags.DEFINE_string(
    "predictions_dir",
    os.path.join(REPO, "benchmarks", "results", "parity"),
    "Folder of each side's test predictions; a side already there for this recipe is read back.",
)
_RETRAIN = flags.DEFINE_bool("retrain", False, "Train every side again, replacing its stored predictions.")


def parse_epochs(values: list[str]) -> list[int]:
    try:
        epochs = [int(v) for v in values]
    except ValueError:
        raise StudyError(f"--epochs must be whole numbers of epochs, got {','.join(values)}") from None
    if not epochs or any(e < 1 for e in epochs):
        raise StudyError(f"--epochs must be ≥ 1 each, got {','.join(values)}")
    return epochs


def parse_run_counts(values: list[str], epochs: list[int]) -> list[int]:
    """Runs per length: one count for all, or one per length."""
    try:
        counts = [int(v) for v in values]
    except ValueError:
        raise StudyError(f"--num_runs must be whole numbers, got {','.join(values)}") from None
    if len(counts) == 1:
        counts = counts * len(epochs)
    if len(counts) != len(epochs):
        raise StudyError(
            f"--num_runs gives {len(counts)} counts for {len(epochs)} lengths in --epochs; give one or one per length"
        )
    if any(c < 2 for c in counts):
        raise StudyError(f"--num_runs must be ≥ 2 each (a std needs two runs), got {','.join(values)}")
    return counts


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


def side_path(directory: str, side: str, epochs: int, num_runs: int) -> str:
    return os.path.join(directory, f"{side}_{epochs}ep_{num_runs}runs.npz")


def side_identity(dataset: str, side: str, epochs: int, num_runs: int) -> dict:
    """What a stored side must have been trained with to be read back instead of retrained."""
    return {"recipe": RECIPE, "dataset": dataset, "side": side, "epochs": epochs, "num_runs": num_runs}


def load_side(path: str, identity: dict) -> tuple[np.ndarray, np.ndarray, float] | None:
    """A stored side's (predictions, labels, seconds), or None where none is stored. A file that
    cannot be read, or that was trained with something else, is an error, not a silent retrain."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            predictions, labels = stored["predictions"], stored["labels"]
    except (OSError, ValueError, KeyError) as exc:
        raise StudyError(
            f"{path}: not a stored parity side ({type(exc).__name__}); remove it or pass --retrain"
        ) from None
    if meta.get("identity") != json.loads(json.dumps(identity)):
        raise StudyError(f"{path}: stored for {meta.get('identity')}, not this benchmark; remove it or pass --retrain")
    if predictions.shape != (identity["num_runs"], labels.shape[0]):
        raise StudyError(f"{path}: predictions of shape {predictions.shape} for {identity['num_runs']} runs")
    return predictions, labels, float(meta["wall_s"])


def save_side(path: str, identity: dict, predictions, labels, seconds: float) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    meta = json.dumps({"identity": identity, "wall_s": seconds, "cpu_model": machine.cpu_model()})
    small = np.uint8 if int(np.max(labels)) < 256 else np.int32  # class indices: a byte each
    store.write_npz_compressed(
        path,
        predictions=np.asarray(predictions).astype(small),
        labels=np.asarray(labels).astype(small),
        meta=np.array(meta),
    )


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


def benchmark(
    dataset: str,
    run_counts: list[int],
    epochs_list: list[int],
    inits: list[str],
    out: str,
    predictions_dir: str,
    retrain: bool = False,
) -> dict:
    try:
        import torch
    except ImportError:
        raise StudyError("the PyTorch reference needs torch (pip install -e '.[bench]')") from None
    import jax

    from vmaptrain.data import load_dataset

    load_dataset(dataset)  # a bad dataset fails here, before either side trains

    log = lambda message: print(message, flush=True)
    log(f"cpu: {machine.cpu_model()} ({os.cpu_count()} cores); jax {jax.__version__}, torch {torch.__version__}")
    log(f"recipe: {RECIPE}; {dataset}")
    report = {
        "command": " ".join(["python"] + sys.argv),
        "cpu_model": machine.cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "torch": torch.__version__,
        "dataset": dataset,
        "recipe": RECIPE,
        "num_runs": dict(zip(map(str, epochs_list), run_counts)),
        "results": {},
    }

    def side(name: str, epochs: int, num_runs: int, train):
        """A side's predictions: read back when stored for this recipe, else trained and stored."""
        path = side_path(predictions_dir, name, epochs, num_runs)
        identity = side_identity(dataset, name, epochs, num_runs)
        stored = None if retrain else load_side(path, identity)
        if stored is not None:
            log(f"{epochs} epochs: {name} read back from {os.path.relpath(path)} (trained in {stored[2]:.1f} s)")
            return stored
        predictions, labels, seconds = train()
        save_side(path, identity, predictions, labels, seconds)
        log(f"{epochs} epochs: {name} done in {seconds:.1f} s")
        return predictions, labels, seconds

    for epochs, num_runs in zip(epochs_list, run_counts):
        # vmaptrain's sides first: the shorter ones, so an interrupted benchmark keeps more.
        trained = {}
        for init in inits:
            train = partial(train_vmaptrain, dataset, num_runs, epochs, init)
            trained[f"vmaptrain init={init}"] = side(f"vmaptrain-init-{init}", epochs, num_runs, train)
        predictions, labels, seconds = side(
            PYTORCH, epochs, num_runs, partial(train_pytorch, dataset, num_runs, epochs)
        )
        sides = {PYTORCH: {**accuracy_statistics(predictions, labels), "wall_s": seconds}}
        for name, (predictions, vm_labels, seconds) in trained.items():
            if not np.array_equal(vm_labels, labels):
                raise StudyError("vmaptrain and the PyTorch reference saw different test labels")
            stats = {**accuracy_statistics(predictions, labels), "wall_s": seconds}
            stats["minus_pytorch"] = difference(stats, sides[PYTORCH])
            sides[name] = stats
        log(table(epochs, sides))
        report["results"][str(epochs)] = sides
        store.write_report(out, report)  # after every length, so an interruption keeps the finished ones
    log(f"wrote {out}")
    return report


def main(argv) -> None:
    cli.reject_extra_args(argv)
    cli.run_or_exit(
        lambda: benchmark(
            _DATASET.value,
            parse_run_counts(_NUM_RUNS.value, parse_epochs(_EPOCHS.value)),
            parse_epochs(_EPOCHS.value),
            check_inits(_INIT.value),
            _OUT.value,
            _PREDICTIONS_DIR.value,
            _RETRAIN.value,
        )
    )


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
