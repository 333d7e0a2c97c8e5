"""The reference net (measured in BUILD_NOTES.md) and its training loop in PyTorch eager, for comparison.

Mirrors `vmaptrain.models.SmallCNN` + vmaptrain's nesterov optimizer: conv3×3 (no bias) → BN →
GELU (tanh form, as flax's `nn.gelu`) → 2×2 max-pool, three times (16/32/64 channels), global
max, dense (with bias); torch.nn's default init (vmaptrain's init="torch"); SGD with Nesterov
momentum 0.9 and coupled weight decay on every parameter, its lr decayed linearly to 0 per step
as vmaptrain's "linear" schedule; channels_last on CPU. PyTorch is an optional extra: importing
this module needs `torch`.

Run as a script with no flags it is the JSON-lines worker through which
benchmarks/seed_throughput.py times PyTorch in a process of its own (`worker`):

    python benchmarks/torch_reference.py < commands.jsonl

With `--dataset` it is the PyTorch loop a user would run instead of a vmaptrain study (what
benchmarks/study_wall.py times as a whole command; benchmarks/parity.py compares its accuracy
distribution with vmaptrain's, from the test predictions `--predictions` writes):

    python benchmarks/torch_reference.py --dataset=idx:/usr/share/datasets/fashion-mnist --num_runs=8
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch
from absl import app, flags, logging
from torch import nn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ReferenceNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: float = 1.0):
        super().__init__()
        layers, channels = [], in_channels
        for out in (16, 32, 64):
            out = max(1, int(round(out * width)))
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.GELU(approximate="tanh"),
                nn.MaxPool2d(2),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.features(x)
        return self.head(torch.amax(x, dim=(2, 3)))


def make_run(seed: int, in_channels: int = 1, lr: float = 0.05, wd: float = 5e-4, momentum: float = 0.9):
    torch.manual_seed(seed)
    model = ReferenceNet(in_channels).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=True, weight_decay=wd)
    return model, optimizer


def train_step(model, optimizer, images, labels):
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss


def time_steps(num_runs: int, steps: int, batch: int = 256, shape=(1, 28, 28), warmup: int = 2) -> list[float]:
    """Seconds per model-step of `num_runs` trainings run one after another (each its own model
    and batches), one figure per timed step of each run; the batches are made up in advance."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randn((batch * 4,) + tuple(shape), generator=gen).to(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch * 4,), generator=gen)
    times = []
    for run in range(num_runs):
        model, optimizer = make_run(run, shape[0])
        for i in range(warmup + steps):
            j = (i % 4) * batch
            start = time.perf_counter()
            train_step(model, optimizer, images[j : j + batch], labels[j : j + batch])
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


def linear_decay(optimizer, base_lr: float, step: int, total_steps: int) -> None:
    """vmaptrain's "linear" schedule: lr · (1 − step/total) before 0-based step `step`, per step."""
    for group in optimizer.param_groups:
        group["lr"] = base_lr * (1.0 - step / total_steps)


def train_study(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    num_runs: int,
    epochs: int,
    batch: int,
    mean,
    std,
    lr: float = 0.05,
    wd: float = 5e-4,
    momentum: float = 0.9,
) -> dict:
    """`num_runs` full trainings one after another (own init and data order), then each run's
    test accuracy and predictions ([runs, test examples] class indices); the wall time covers
    batching, normalisation, training and evaluation. `mean`/`std`: per channel (or one value)."""
    start = time.perf_counter()
    # Copies: the loaders' arrays may be read-only (memory-mapped), which torch warns about.
    train = torch.from_numpy(np.array(x_train)).permute(0, 3, 1, 2).contiguous()
    test = torch.from_numpy(np.array(x_test)).permute(0, 3, 1, 2).contiguous()
    targets = torch.from_numpy(y_train).long()
    mean = torch.tensor(np.asarray(mean, np.float32)).reshape(1, -1, 1, 1)
    std = torch.tensor(np.asarray(std, np.float32)).reshape(1, -1, 1, 1)
    steps = len(x_train) // batch
    total_steps = steps * epochs
    accuracies, predictions = [], np.zeros((num_runs, len(x_test)), np.int16)
    for run in range(num_runs):
        model, optimizer = make_run(run, train.shape[1], lr=lr, wd=wd, momentum=momentum)
        gen = torch.Generator().manual_seed(1000 + run)
        for epoch in range(epochs):
            order = torch.randperm(len(train), generator=gen)
            for k in range(steps):
                linear_decay(optimizer, lr, epoch * steps + k, total_steps)
                idx = order[k * batch : (k + 1) * batch]
                images = ((train[idx].float() - mean) / std).contiguous(memory_format=torch.channels_last)
                train_step(model, optimizer, images, targets[idx])
        model.eval()
        with torch.no_grad():
            for k in range(0, len(test), 1000):
                images = ((test[k : k + 1000].float() - mean) / std).contiguous(memory_format=torch.channels_last)
                predictions[run, k : k + 1000] = model(images).argmax(-1).numpy()
        accuracies.append(float(np.mean(predictions[run] == y_test)))
    return {"wall_s": time.perf_counter() - start, "accuracies": accuracies, "predictions": predictions}


class SequentialRounds:
    """`num_runs` trainings that each take one step per `round()`, one after another."""

    def __init__(self, num_runs: int, batch: int, shape, threads: int | None = None):
        if threads:
            torch.set_num_threads(threads)
        gen = torch.Generator().manual_seed(0)
        c, h, w = shape
        self.batch = batch
        self.images = torch.randn((4 * batch, c, h, w), generator=gen).contiguous(memory_format=torch.channels_last)
        self.labels = torch.randint(0, 10, (4 * batch,), generator=gen)
        self.runs = [make_run(r, c) for r in range(num_runs)]
        self.count = 0

    def round(self) -> float:
        j = (self.count % 4) * self.batch
        self.count += 1
        start = time.perf_counter()
        for model, optimizer in self.runs:
            train_step(model, optimizer, self.images[j : j + self.batch], self.labels[j : j + self.batch])
        return time.perf_counter() - start


def study_from_dataset(
    dataset: str,
    num_runs: int,
    epochs: int,
    batch: int,
    threads: int | None = None,
    lr: float = 0.05,
    wd: float = 5e-4,
    momentum: float = 0.9,
) -> dict:
    """`train_study` on a vmaptrain dataset string (loaded with vmaptrain's loaders); also the
    test labels."""
    sys.path.insert(0, REPO)
    from vmaptrain.data import load_dataset

    if threads:
        torch.set_num_threads(threads)
    data = load_dataset(dataset)
    out = train_study(
        data.x_train,
        data.y_train.astype(np.int64),
        data.x_test,
        data.y_test.astype(np.int64),
        num_runs,
        epochs,
        batch,
        data.mean,
        data.std,
        lr=lr,
        wd=wd,
        momentum=momentum,
    )
    out["labels"] = np.asarray(data.y_test, np.int64)
    out["threads"] = torch.get_num_threads()
    return out


def summary(out: dict) -> dict:
    """A study's result without its arrays (what is printed as JSON)."""
    return {k: v for k, v in out.items() if not isinstance(v, np.ndarray)}


def cpu_model() -> str:
    """`vmaptrain.machine.cpu_model()` (pure Python: no jax, no allocator settings)."""
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    from vmaptrain import machine

    return machine.cpu_model()


def worker() -> None:
    """Line-oriented JSON worker, so a JAX benchmark can time PyTorch in its own process: JAX's
    and PyTorch's spinning thread pools in one process slow each other down several-fold on 2
    cores. Commands: {"setup": {...SequentialRounds kwargs}} → threads, torch version and CPU
    model; {"rounds": n} → list of seconds; {"study": {...study_from_dataset kwargs}} → its
    result and the CPU model. Nothing else is written to stdout."""
    import json

    rounds = None
    for line in sys.stdin:
        command = json.loads(line)
        if "setup" in command:
            rounds = SequentialRounds(**command["setup"])
            reply = {"threads": torch.get_num_threads(), "torch": torch.__version__, "cpu_model": cpu_model()}
        elif "study" in command:
            reply = {**summary(study_from_dataset(**command["study"])), "cpu_model": cpu_model()}
        else:
            reply = {"seconds": [rounds.round() for _ in range(command["rounds"])]}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def fail(message: str) -> None:
    """`vmaptrain.cli.fail`: one 'error: …' line, exit status 2. The worker does not import
    vmaptrain.cli, which imports jax and vmaptrain's training modules (one of which tunes the C
    allocator for XLA): the PyTorch timings are to measure PyTorch alone."""
    sys.stderr.write(f"error: {message}\n")
    sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
    """`vmaptrain.cli.parse_flags` without importing vmaptrain.cli (see `fail`)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        fail(f"{str(err).rstrip('.')} (see --helpshort)")


_DATASET = flags.DEFINE_string(
    "dataset", None, "Train a study on this vmaptrain dataset string and print its JSON (default: be the worker)."
)
_NUM_RUNS = flags.DEFINE_integer("num_runs", 8, "Runs of the study, trained one after another.", lower_bound=1)
_EPOCHS = flags.DEFINE_integer("epochs", 1, "Epochs per run.", lower_bound=1)
_BATCH = flags.DEFINE_integer("batch_size", 256, "Batch size.", lower_bound=1)
_THREADS = flags.DEFINE_integer("threads", None, "torch.set_num_threads (default: torch's).", lower_bound=1)
_LR = flags.DEFINE_float("lr", 0.05, "Peak learning rate (decayed linearly to 0 per step).", lower_bound=0.0)
_WD = flags.DEFINE_float("wd", 5e-4, "Weight decay (coupled, every parameter).", lower_bound=0.0)
_MOMENTUM = flags.DEFINE_float("momentum", 0.9, "Nesterov momentum.", lower_bound=0.0, upper_bound=0.999)
_PREDICTIONS = flags.DEFINE_string(
    "predictions", None, "Also write the runs' test predictions and the test labels to this .npz file."
)


def main(argv) -> None:
    """The PyTorch loop a user would run instead of vmaptrain (`--dataset=…`): the runs one after
    another in one process, then their test accuracies, as one JSON line; or the worker."""
    if len(argv) > 1:
        fail(f"unexpected positional arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)  # as vmaptrain.cli.run_or_exit: no INFO lines on stderr
    if _DATASET.value is None:
        worker()
        return
    import json

    out = study_from_dataset(
        _DATASET.value,
        _NUM_RUNS.value,
        _EPOCHS.value,
        _BATCH.value,
        _THREADS.value,
        lr=_LR.value,
        wd=_WD.value,
        momentum=_MOMENTUM.value,
    )
    if _PREDICTIONS.value:
        np.savez(_PREDICTIONS.value, predictions=out["predictions"], labels=out["labels"])
    print(json.dumps({**summary(out), "cpu_model": cpu_model()}))


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
