"""Hooks of the group trainer's loop, in the style of clu's periodic actions.

A hook sees the trainer and the group state after every step (`after_step`), and once before
and after a `train` call (`begin`, `end`). `PeriodicHook` decides when to act: every N steps,
every T seconds, at the end of every E-th epoch or of listed epochs, and at the last step.
The study's checkpoints, snapshots, progress line, SIGTERM handling and metrics are hooks; the
order of a hook list is the order they act in after a step.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time

import jax
import numpy as np

from vmaptrain.engine import placement


class StudyInterrupted(RuntimeError):
    """SIGTERM arrived; the state was checkpointed and the same command resumes."""


class Hook:
    def begin(self, trainer, state) -> None:
        pass

    def after_step(self, trainer, state, event) -> None:
        pass

    def end(self, trainer, state) -> None:
        pass


class PeriodicHook(Hook):
    """Acts (`run`) after a step when one of its triggers fires.

    every_steps: steps since it last acted; every_secs: wall time since it last acted (or since
    `begin`); every_epochs / epochs: at the end of every E-th epoch (1-based) or of the listed
    ones.
    """

    def __init__(self, *, every_steps=0, every_secs=0.0, every_epochs=0, epochs=()):
        self.every_steps, self.every_secs = every_steps, every_secs
        self.every_epochs, self.epochs = every_epochs, frozenset(epochs)
        self._last_step, self._last_time = 0, time.monotonic()

    def begin(self, trainer, state) -> None:
        self._last_step, self._last_time = state.step, time.monotonic()

    def due(self, event) -> bool:
        if self.every_steps and event.step - self._last_step >= self.every_steps:
            return True
        if self.every_secs and time.monotonic() - self._last_time >= self.every_secs:
            return True
        epoch = event.epoch + 1
        return bool(
            event.epoch_end and ((self.every_epochs and epoch % self.every_epochs == 0) or epoch in self.epochs)
        )

    def after_step(self, trainer, state, event) -> None:
        if self.due(event):
            self.run(trainer, state, event)
            self._last_step, self._last_time = event.step, time.monotonic()

    def run(self, trainer, state, event) -> None:
        raise NotImplementedError


class TermGuard:
    """Turns SIGTERM into a flag the checkpoint hook checks after every step."""

    def __init__(self):
        self.stop = False

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGTERM, self._handle)
        try:
            yield self
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _handle(self, signum, frame):
        self.stop = True


class CheckpointHook(PeriodicHook):
    """Saves the group state (orbax, `checkpoint.GroupCheckpoints`) every N steps and/or M
    minutes, and when SIGTERM arrived, after which it raises `StudyInterrupted`.

    Time-based saves need every process to agree on when to save, and wall clocks do not: they
    are single-process only.
    """

    def __init__(self, checkpoints, guard: TermGuard, every_steps: int = 0, every_minutes: float = 0.0):
        every_secs = 60 * every_minutes if jax.process_count() == 1 else 0.0
        super().__init__(every_steps=every_steps, every_secs=every_secs)
        self.checkpoints, self.guard = checkpoints, guard

    def due(self, event) -> bool:
        return self.guard.stop or super().due(event)

    def run(self, trainer, state, event) -> None:
        self.checkpoints.save(event.step, state.checkpoint_tree(), trainer.position(state))
        if self.guard.stop:
            raise StudyInterrupted(
                f"stopped by SIGTERM at epoch {event.epoch + 1}, step {event.step_in_epoch + 1}; checkpoint "
                f"saved — rerun the same command to resume"
            )


class SnapshotHook(PeriodicHook):
    """Evaluates the test set after the listed epochs and hands the logits to `write(epoch,
    first run index, logits)` (snapshot ensembles); keeps them in `logits` too."""

    def __init__(self, epochs, write=None):
        super().__init__(epochs=epochs)
        self.write, self.logits = write, {}

    def run(self, trainer, state, event) -> None:
        logits = trainer.evaluate(state)
        self.logits[event.epoch + 1] = logits
        if self.write is not None:
            self.write(event.epoch + 1, state.indices[0], logits)


class Progress:
    """One line per epoch on stderr. It says "compiling" until the first step has run; runs/s
    and the ETA come from the steps timed after that, so compilation does not inflate them."""

    def __init__(self, total_runs: int, total_steps: int, steps_per_epoch: int, stream=None, quiet: bool = False):
        self.quiet = quiet  # keeps time (compile_s), says nothing
        self.total_runs, self.total_steps = total_runs, max(total_steps, 1)
        self.epochs = max(math.ceil(total_steps / steps_per_epoch), 1)
        self.stream = stream or sys.stderr
        self.created = time.perf_counter()
        self.skipped = 0
        self.run_steps = 0  # run-steps done after the clock started
        self.clock = None  # perf_counter when the first step had run
        self.compile_s = None
        self._compile_reported = False

    def say(self, text: str) -> None:
        if self.quiet:
            return
        self.stream.write(text + "\n")
        self.stream.flush()

    def skip(self, runs: int) -> None:
        self.skipped += runs

    def started(self) -> None:
        if self.clock is None:
            self.clock = time.perf_counter()
            self.compile_s = self.clock - self.created

    def update(self, epoch: int, runs_done: int, group_runs: int, steps: int) -> None:
        self.run_steps += group_runs * steps
        elapsed = time.perf_counter() - self.clock if self.clock is not None else 0.0
        rate = self.run_steps / elapsed if elapsed > 0 and self.run_steps else 0.0  # run-steps / s
        remaining = (self.total_runs - self.skipped) * self.total_steps - self.run_steps
        eta = remaining / rate if rate > 0 else float("inf")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "?"
        compiled = ""
        if self.compile_s is not None and not self._compile_reported:  # once, on the first line
            compiled, self._compile_reported = f" | compiled in {self.compile_s:.1f} s", True
        self.say(
            f"epoch {epoch}/{self.epochs} | runs done {runs_done}/{self.total_runs} | "
            f"{rate / self.total_steps:.3f} runs/s | ETA {eta_text}{compiled}"
        )


class ProgressHook(Hook):
    """Drives a `Progress` meter for one group: "compiling" before the first step, a line per
    epoch (process 0 only)."""

    def __init__(self, meter: Progress, group_start: int, group_size: int):
        self.meter, self.group_start, self.group_size = meter, group_start, group_size
        self._first = True
        self._timed_from = 0

    def begin(self, trainer, state) -> None:
        self._first, self._timed_from = True, state.step
        if self.meter.clock is None and jax.process_index() == 0:
            self.meter.say(
                f"compiling the training program ({self.group_size} runs per program, strategy "
                f"{trainer.programs.strategy}) …"
            )

    def after_step(self, trainer, state, event) -> None:
        if self._first:
            self._first = False
            if self.meter.clock is None:
                jax.block_until_ready(state.loss_sum)
                self.meter.started()
                self._timed_from = event.step
        if event.epoch_end and jax.process_index() == 0:
            jax.block_until_ready(state.last_loss)
            done = self.group_start + (self.group_size if event.step == trainer.total_steps else 0)
            steps, self._timed_from = event.step - self._timed_from, event.step
            self.meter.update(event.epoch + 1, done, self.group_size, steps)


class MetricsHook(PeriodicHook):
    """At the end of every epoch: each run's mean train loss over the epoch and learning rate,
    plus test accuracy every `eval_every_epochs` epochs (0: only at the last step), handed to
    `sink.write_epoch(...)` (`vmaptrain.metrics.MetricsWriter`)."""

    def __init__(self, sink, eval_every_epochs: int = 0, group: tuple[int, int] = (0, 0)):
        super().__init__(every_epochs=1)
        self.sink, self.eval_every, self.group = sink, eval_every_epochs, group

    def begin(self, trainer, state) -> None:
        super().begin(trainer, state)
        self.sink.begin_group(self.group, state.indices, first_epoch=trainer.position(state)["epoch"] + 1)

    def run(self, trainer, state, event) -> None:
        epoch = event.epoch + 1
        evaluate = (self.eval_every and epoch % self.eval_every == 0) or event.step == trainer.total_steps
        self.sink.write_epoch(
            group=self.group,
            indices=state.indices,
            epoch=epoch,
            step=event.step,
            train_loss=placement.local_runs(state.last_loss).astype(np.float64),
            lr=trainer.lr(state),
            test_accuracy=trainer.test_accuracy(state) if evaluate else None,
        )
