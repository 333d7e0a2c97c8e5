"""Per-run training curves of a study: `metrics.jsonl` and one TensorBoard run per seed.

`metrics.jsonl` is append-only, one JSON line per epoch per group of runs:

    {"group": [0, 32], "runs": [0, 1, …], "epoch": 3, "step": 66, "train_loss": [...],
     "lr": [...], "test_accuracy": [...] (epochs with an evaluation), "time": 1732…}

A line is written once: a resumed group retrains from its checkpoint, and the lines it already
wrote for those epochs (bitwise what the retraining computes again) are not written twice. A
line cut short by a kill is dropped when the file is next opened.

TensorBoard event files go to `tensorboard/run_00012/`, so every seed is its own run in
TensorBoard and curves overlay. They are written with the tensorboard package's record writer
and protos (no TensorFlow); without the package only `metrics.jsonl` is written. A resumed
group starts a new event file with a SessionLog START at its first epoch, which tells
TensorBoard to discard the points the interrupted process wrote from that epoch on.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time

import numpy as np

log = logging.getLogger("vmaptrain.metrics")

FILE = "metrics.jsonl"
TENSORBOARD = "tensorboard"


def run_dir(workdir: str, index: int) -> str:
    return os.path.join(workdir, TENSORBOARD, f"run_{index:05d}")


def read_lines(path: str) -> list[dict]:
    """Every complete line of a metrics file (a torn last line is ignored)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    return [json.loads(line) for line in lines[:-1] if line.strip()]


def _drop_torn_tail(path: str) -> None:
    """Truncate a kill-torn last line (no newline) so the next append starts a fresh line."""
    try:
        with open(path, "rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        pass


class MetricsWriter:
    """The sink of `engine.hooks.MetricsHook` for one study workdir (this process's runs)."""

    def __init__(self, workdir: str, tensorboard: bool = True):
        self.workdir = workdir
        self.path = os.path.join(workdir, FILE)
        if jax_process_index() != 0:
            self.path = os.path.join(workdir, f"metrics.process{jax_process_index():03d}.jsonl")
        self.tensorboard = tensorboard and _tensorboard_available()
        self._written: set[tuple[int, int]] = set()
        self._events: dict[int, _EventFile] = {}

    def begin_group(self, group: tuple[int, int], indices, first_epoch: int) -> None:
        _drop_torn_tail(self.path)
        self._written = {(tuple(line["group"])[0], line["epoch"]) for line in read_lines(self.path)}
        if self.tensorboard:
            for index in indices:
                self._event_file(index).session_start(first_epoch)

    def write_epoch(self, *, group, indices, epoch, step, train_loss, lr, test_accuracy=None) -> None:
        if (group[0], epoch) not in self._written:
            line = {
                "group": list(group),
                "runs": [int(i) for i in indices],
                "epoch": int(epoch),
                "step": int(step),
                "train_loss": [_number(v) for v in train_loss],
                "lr": [_number(v) for v in lr],
            }
            if test_accuracy is not None:
                line["test_accuracy"] = [_number(v) for v in test_accuracy]
            line["time"] = time.time()
            # One write() of a whole line on an O_APPEND descriptor: lines never interleave.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (json.dumps(line) + "\n").encode())
            finally:
                os.close(fd)
            self._written.add((group[0], epoch))
        if self.tensorboard:
            for j, index in enumerate(indices):
                scalars = {"train/loss": train_loss[j], "train/lr": lr[j]}
                if test_accuracy is not None:
                    scalars["test/accuracy"] = test_accuracy[j]
                self._event_file(index).scalars(epoch, scalars)

    def _event_file(self, index: int) -> _EventFile:
        if index not in self._events:
            self._events[index] = _EventFile(run_dir(self.workdir, index))
        return self._events[index]

    def close(self) -> None:
        for events in self._events.values():
            events.close()
        self._events.clear()


def _number(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def jax_process_index() -> int:
    import jax

    return jax.process_index()


def _tensorboard_available() -> bool:
    try:
        from tensorboard.compat.proto import event_pb2  # noqa: F401
        from tensorboard.summary.writer.record_writer import RecordWriter  # noqa: F401
    except ImportError:
        log.warning("tensorboard is not installed: only metrics.jsonl is written (pip install tensorboard)")
        return False
    return True


class _EventFile:
    """One TensorBoard event file (TFRecord framing of `Event` protos), flushed per write."""

    _counter = 0

    def __init__(self, directory: str):
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        os.makedirs(directory, exist_ok=True)
        _EventFile._counter += 1
        name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}.{_EventFile._counter}"
        self._handle = open(os.path.join(directory, name), "ab")  # noqa: SIM115 - closed in close()
        self._writer = RecordWriter(self._handle)
        self._event_pb2 = event_pb2
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event) -> None:
        self._writer.write(event.SerializeToString())
        self._handle.flush()

    def session_start(self, step: int) -> None:
        log_entry = self._event_pb2.SessionLog(status=self._event_pb2.SessionLog.START)
        self._write(self._event_pb2.Event(wall_time=time.time(), step=int(step), session_log=log_entry))

    def scalars(self, step: int, values: dict) -> None:
        from tensorboard.compat.proto import summary_pb2

        summary = summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(v)) for tag, v in values.items()]
        )
        self._write(self._event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def close(self) -> None:
        self._handle.close()


def loss_curves_png(workdir: str, title: str) -> bytes | None:
    """Every run's train loss per epoch (and test accuracy where evaluated), from metrics.jsonl."""
    lines = []
    for name in sorted(os.listdir(workdir)):
        if name == FILE or (name.startswith("metrics.process") and name.endswith(".jsonl")):
            lines += read_lines(os.path.join(workdir, name))
    if not lines:
        return None
    curves: dict[int, dict[int, float]] = {}
    accuracy: dict[int, dict[int, float]] = {}
    for line in lines:
        for j, run in enumerate(line["runs"]):
            curves.setdefault(run, {})[line["epoch"]] = line["train_loss"][j]
            if "test_accuracy" in line and line["test_accuracy"][j] is not None:
                accuracy.setdefault(run, {})[line["epoch"]] = line["test_accuracy"][j]
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if any(len(a) > 1 for a in accuracy.values()) else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), dpi=100, squeeze=False)
    for _run, points in sorted(curves.items()):
        epochs = sorted(points)
        axes[0, 0].plot(epochs, [np.nan if points[e] is None else points[e] for e in epochs], lw=0.8, alpha=0.6)
    axes[0, 0].set_xlabel("epoch")
    axes[0, 0].set_ylabel("train loss (epoch mean)")
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_title(f"{title}: {len(curves)} runs")
    if panels == 2:
        for _run, points in sorted(accuracy.items()):
            epochs = sorted(points)
            axes[0, 1].plot(epochs, [100 * points[e] for e in epochs], lw=0.8, alpha=0.6)
        axes[0, 1].set_xlabel("epoch")
        axes[0, 1].set_ylabel("test accuracy (%)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
