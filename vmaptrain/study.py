"""The Python API: a configuration in, a trained seed study (and its workdir) out.

A study trains its runs in groups; inside a group the runs are stacked, sharded over the
devices (`distributed`) and batched per device by a strategy (`parallel`). With a workdir the
study resumes by default: a group restarts from its latest orbax checkpoint, and groups
whose predictions are already stored are skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import shutil
import signal
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np

from vmaptrain import augment, distributed, models, optim, outputs, poke, rng, store, tta
from vmaptrain import workdir as workdirs
from vmaptrain.checkpoint import GroupCheckpoints
from vmaptrain.config import StudyConfig, StudyError
from vmaptrain.data import DataError, Dataset, load_dataset, normalize
from vmaptrain.models import ModelError, make_model
from vmaptrain.train import Hyper, TrainSpec


class StudyInterrupted(RuntimeError):
    """SIGTERM arrived; the state was checkpointed and the same command resumes."""


@dataclasses.dataclass
class StudyResult:
    logits: np.ndarray  # float32 [runs, test examples, classes]
    labels: np.ndarray  # int32 [test examples]
    runs: list[dict]
    summary: dict
    state: object = None  # final stacked RunState (host arrays) when all runs trained in this call
    spec: TrainSpec | None = None
    snapshots: dict = dataclasses.field(default_factory=dict)  # {epoch: [runs, n, k] logits}


class Progress:
    """One line per epoch on stderr: epoch, runs done, runs/s, ETA."""

    def __init__(self, total_runs: int, epochs: int, stream=sys.stderr):
        self.total_runs, self.epochs, self.stream = total_runs, max(epochs, 1), stream
        self.start = time.perf_counter()
        self.run_epochs = 0.0
        self.skipped = 0

    def skip(self, runs: int) -> None:
        self.skipped += runs

    def update(self, epoch: int, runs_done: int, group_runs: int) -> None:
        self.run_epochs += group_runs
        elapsed = time.perf_counter() - self.start
        runs_per_s = self.run_epochs / self.epochs / max(elapsed, 1e-9)
        remaining = self.total_runs - self.skipped - self.run_epochs / self.epochs
        eta = remaining / runs_per_s if runs_per_s > 0 else float("inf")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "?"
        self.stream.write(
            f"epoch {epoch}/{self.epochs} | runs done {runs_done}/{self.total_runs} | "
            f"{runs_per_s:.3f} runs/s | ETA {eta_text}\n"
        )
        self.stream.flush()


class TermGuard:
    """Turns SIGTERM into a flag the training loop checks between steps."""

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


def build_spec(config: StudyConfig, data: Dataset) -> TrainSpec:
    n = len(data.y_train)
    if config.batch_size > n:
        raise StudyError(f"batch_size {config.batch_size} is larger than the training set ({n} examples)")
    steps_per_epoch = n // config.batch_size
    total = max(config.total_steps(steps_per_epoch), 1)
    try:
        train_images = None
        if getattr(models.REGISTRY.get(config.model), "needs_training_images", False):
            # Only the images the whitening uses are normalised (not the whole training set).
            train_images = normalize(data.x_train[models.whitening_sample(n)], data.mean, data.std)
        model = make_model(config.model, data.num_classes, config.width, train_images)
        aug = augment.AugmentConfig(
            flip=config.flip, translate=config.translate, translate_mode=config.translate_mode, cutout=config.cutout
        )
        aug.check_image_size(*data.x_train.shape[1:3])
        tta.check(config.tta, *data.x_train.shape[1:3])
        schedule = optim.Schedule(
            config.schedule,
            total,
            int(round(config.warmup_epochs * steps_per_epoch)),
            start=config.schedule_start,
            end=config.schedule_end,
            cycles=config.schedule_cycles,
        )
    except (ModelError, ValueError) as err:
        raise StudyError(str(err)) from None
    poke_path = None
    if any(step >= 0 for step in config.per_run("poke_step")):
        poke_path = config.poke_param or model.default_poke_param
    limited = tuple(
        (path, int(round(epochs * steps_per_epoch)))
        for path, epochs in sorted(getattr(model, "train_only_epochs", {}).items())
    )
    return TrainSpec(
        model=model,
        optimizer=config.optimizer,
        schedule=schedule,
        batch_size=config.batch_size,
        steps_per_epoch=steps_per_epoch,
        augment=aug,
        poke_path=poke_path,
        norm_lr_scale=config.norm_lr_scale,
        norm_wd_scale=config.norm_wd_scale,
        limited=limited,
        lookahead=config.lookahead,
        tta=config.tta,
    )


def check_model(spec: TrainSpec, data: Dataset) -> None:
    sample = jnp.zeros((1,) + data.x_train.shape[1:], jnp.float32)
    try:
        shapes = jax.eval_shape(lambda: spec.model.init(jax.random.key(0), sample, train=False))
    except ValueError as err:
        raise StudyError(f"model '{spec.model.__class__.__name__}' cannot take {data.name} images: {err}") from None
    if spec.poke_path is not None:
        try:
            size = poke.check_path(shapes["params"], spec.poke_path)
        except ValueError as err:
            raise StudyError(str(err)) from None
        return size
    return 0


def device_data(data: Dataset) -> dict:
    """The training set and normalisation constants (host arrays; placed once per study)."""
    # Cutout fills with the mean colour truncated to integers, as the paper's pipeline did.
    fill = np.clip(np.floor(data.mean), 0, 255).astype(data.x_train.dtype)
    return {
        "x_train": data.x_train,
        "y_train": data.y_train.astype(np.int32),
        "mean": data.mean.astype(np.float32),
        "std": data.std.astype(np.float32),
        "fill": fill,
    }


def run_inputs(config: StudyConfig, indices: list[int]):
    """Per-run init inputs for the runs `indices`: keys, hyperparameters, pokes (stacked)."""
    vary = rng.parse_vary(config.vary)
    seeds = [rng.run_seeds(i, vary, config.fixed_seed) for i in indices]
    keys = {s: rng.stream_key_data(config.seed, seeds, s) for s in rng.STREAMS}

    def column(name, dtype):
        values = config.per_run(name)
        return np.asarray([values[i] for i in indices], dtype)

    hyper = Hyper(
        lr=column("lr", np.float32),
        wd=column("wd", np.float32),
        momentum=column("momentum", np.float32),
        label_smoothing=column("label_smoothing", np.float32),
    )
    pokes = poke.Poke(
        step=column("poke_step", np.int32),
        index=column("poke_index", np.int32),
        factor=np.full((len(indices),), config.poke_factor, np.float32),
    )
    return seeds, (keys["init"], keys["order"], keys["aug"], hyper, pokes)


@functools.lru_cache(maxsize=32)
def programs_for(spec: TrainSpec, strategy: str, devices: tuple) -> distributed.ShardedPrograms:
    """Studies with the same spec, strategy and devices share one compilation."""
    return distributed.ShardedPrograms(spec, strategy, distributed.Mesh(np.asarray(devices), (distributed.AXIS,)))


def evaluate(programs, state, data: Dataset, batch: int) -> np.ndarray:
    """This process's runs' logits on the test split, [local runs, examples, classes] float32."""
    x_test = data.x_test
    n = len(x_test)
    batch = min(batch, n)
    padded = math.ceil(n / batch) * batch
    # Pad to whole batches (BN is in eval mode, so padding never touches real examples).
    images = np.concatenate([x_test, np.zeros((padded - n,) + x_test.shape[1:], x_test.dtype)])
    chunks = []
    for start in range(0, padded, batch):
        x = normalize(images[start : start + batch], data.mean, data.std)
        x = distributed.put_replicated(programs.mesh, np.asarray(x))
        chunks.append(distributed.local_runs(programs.eval(state, x)))
    return np.concatenate(chunks, axis=1)[:, :n].astype(np.float32)


def _checkpoint_due(config, steps_since, seconds_since) -> bool:
    if config.checkpoint_every_steps and steps_since >= config.checkpoint_every_steps:
        return True
    # Time-based saves need every process to agree, so they are single-process only.
    minutes = config.checkpoint_every_minutes
    return bool(minutes) and jax.process_count() == 1 and seconds_since >= 60 * minutes


def train_group(
    programs,
    config: StudyConfig,
    data: Dataset,
    dev: dict,
    start: int,
    end: int,
    ckpt: GroupCheckpoints | None,
    guard: TermGuard,
    meter: Progress | None,
    snapshot_dir: str | None = None,
):
    """Train runs start..end-1 together; returns this process's (indices, seeds, logits, facts).

    Snapshot logits (config.snapshot_epochs) go to `snapshot_dir`'s store as they are made.
    """
    spec, mesh = programs.spec, programs.mesh
    size = end - start
    local = distributed.local_run_slice(mesh, size)
    indices = list(range(start + local.start, start + local.stop))
    seeds, inputs = run_inputs(config, indices)
    sample = jnp.zeros((1,) + data.x_train.shape[1:], jnp.float32)
    state = programs.init(distributed.put_runs(mesh, inputs, size), sample)
    zeros = distributed.put_runs(mesh, np.zeros(len(indices), np.float32), size)
    carry = {"run": state, "loss_sum": zeros, "last_loss": zeros + jnp.nan}
    position = {"epoch": 0, "step_in_epoch": 0}
    if ckpt is not None:
        shardings = jax.tree.map(lambda a: a.sharding, carry)
        restored = ckpt.restore(carry, shardings)
        if restored is not None:
            carry, position = restored
    n, spe = len(data.y_train), spec.steps_per_epoch
    total_steps = config.total_steps(spe)
    done_steps = position["epoch"] * spe + position["step_in_epoch"]
    last_save, last_save_time = done_steps, time.monotonic()
    state, loss_sum, last_loss = carry["run"], carry["loss_sum"], carry["last_loss"]
    snapshots = {}
    for epoch in range(position["epoch"], math.ceil(total_steps / spe)):
        permutations = programs.permutations(state.order_key, np.int32(epoch), n)
        first = position["step_in_epoch"] if epoch == position["epoch"] else 0
        steps = min(spe, total_steps - epoch * spe)  # the last epoch may be partial
        for k in range(first, steps):
            state, metrics = programs.step(state, permutations, dev, np.int32(epoch), np.int32(k))
            loss_sum = loss_sum + metrics["loss"]
            done_steps += 1
            if k + 1 == steps:
                last_loss, loss_sum = loss_sum / steps, loss_sum * 0
            if ckpt is not None and (
                guard.stop or _checkpoint_due(config, done_steps - last_save, time.monotonic() - last_save_time)
            ):
                next_position = (
                    {"epoch": epoch + 1, "step_in_epoch": 0}
                    if k + 1 == steps
                    else {"epoch": epoch, "step_in_epoch": k + 1}
                )
                ckpt.save(done_steps, {"run": state, "loss_sum": loss_sum, "last_loss": last_loss}, next_position)
                last_save, last_save_time = done_steps, time.monotonic()
                if guard.stop:
                    raise StudyInterrupted(
                        f"stopped by SIGTERM at epoch {epoch + 1}, step {k + 1}; checkpoint "
                        f"saved — rerun the same command to resume"
                    )
        if epoch + 1 in config.snapshot_epochs:
            snapshots[epoch + 1] = evaluate(programs, state, data, config.eval_batch_size)
            if snapshot_dir is not None:
                workdirs.write_snapshot(snapshot_dir, epoch + 1, indices[0], snapshots[epoch + 1])
        if meter is not None and jax.process_index() == 0:
            jax.block_until_ready(last_loss)
            meter.update(epoch + 1, start + (size if epoch + 1 == meter.epochs else 0), size)
    logits = evaluate(programs, state, data, config.eval_batch_size)
    facts = {
        "diverged": distributed.local_runs(state.diverged),
        "train_loss": distributed.local_runs(last_loss).astype(np.float64),
        "state": distributed.local_runs(state),
        "snapshots": snapshots,
    }
    return indices, seeds, logits, facts


class SeedStudy:
    """S runs of one training configuration, trained together.

    >>> result = SeedStudy(dataset="digits", num_seeds=8, epochs=5).run("/tmp/study")
    >>> result.summary["accuracy_mean"]
    """

    def __init__(self, config: StudyConfig | None = None, **overrides):
        if config is None:
            config = StudyConfig(**overrides)
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config

    def run(self, workdir: str | None = None, *, overwrite: bool = False, progress: bool = True) -> StudyResult:
        config = self.config
        writer = jax.process_index() == 0
        if workdir is not None and workdirs.check(workdir, config, overwrite):
            return load_result(workdir)
        if workdir is None and jax.process_count() > 1:
            raise StudyError("a multi-process study needs a workdir (each process writes its own runs there)")
        try:
            data = load_dataset(config.dataset, data_dir=config.data_dir, manual_dir=config.manual_dir)
        except DataError as err:
            raise StudyError(str(err)) from None
        spec = build_spec(config, data)
        check_model(spec, data)
        mesh = distributed.seed_mesh()
        group = config.group_size or config.num_seeds
        try:
            distributed.check_divisible(config.num_seeds, mesh, "num_seeds")
            distributed.check_divisible(group, mesh, "group_size")
        except ValueError as err:
            raise StudyError(str(err)) from None
        if workdir is not None:  # only a study that can start claims its workdir
            workdirs.claim(workdir, config, overwrite, writer)
        strategy = config.strategy
        if strategy == "auto":
            from vmaptrain import autotune

            strategy = autotune.resolve(config, spec, data, tuple(mesh.devices.flat), group)
        programs = programs_for(spec, strategy, tuple(mesh.devices.flat))
        dev = distributed.put_replicated(mesh, device_data(data))
        finished = workdirs.finished_runs(workdir) if workdir is not None else set()
        meter = Progress(config.num_seeds, math.ceil(config.epochs)) if progress and writer else None
        logits, runs, states, snapshots = [], [], [], []
        guard = TermGuard()
        with guard.installed():
            for start in range(0, config.num_seeds, group):
                end = min(start + group, config.num_seeds)
                if finished.issuperset(range(start, end)):
                    if meter is not None:
                        meter.skip(end - start)
                    continue
                ckpt = GroupCheckpoints(workdirs.checkpoint_dir(workdir, start, end)) if workdir else None
                indices, seeds, group_logits, facts = train_group(
                    programs, config, data, dev, start, end, ckpt, guard, meter, workdir
                )
                rows = describe_runs(config, indices, seeds, group_logits, data.y_test, facts)
                if workdir is not None:
                    workdirs.write_block(workdir, indices[0], group_logits, rows)
                    ckpt.close()
                    _barrier(f"group-{start}")
                    if writer:
                        shutil.rmtree(workdirs.checkpoint_dir(workdir, start, end), ignore_errors=True)
                logits.append(group_logits)
                runs.extend(rows)
                states.append(facts["state"])
                snapshots.append(facts["snapshots"])
        trained_all = sum(len(s.step) for s in states) == config.num_seeds
        state = jax.tree.map(lambda *parts: np.concatenate(parts), *states) if trained_all else None
        if workdir is None:
            logits = np.concatenate(logits)
            summary = summarize(logits, data.y_test, runs)
            snapshots = {e: np.concatenate([s[e] for s in snapshots]) for e in config.snapshot_epochs}
            return StudyResult(
                logits=logits,
                labels=np.asarray(data.y_test, np.int32),
                runs=runs,
                summary=summary,
                state=state,
                spec=spec,
                snapshots=snapshots,
            )
        _barrier("assemble")
        if writer:
            all_logits, all_runs = workdirs.assemble(workdir, config.num_seeds)
            summary = summarize(all_logits.astype(np.float32), data.y_test, all_runs)
            title = f"{config.model} on {config.dataset}: {config.num_seeds} runs, {config.epochs} epochs"
            outputs.write_results(workdir, all_logits, np.asarray(data.y_test), all_runs, summary, title)
        _barrier("written")
        result = load_result(workdir)
        result.state, result.spec = state, spec
        return result


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def describe_runs(config, indices, seeds, logits, labels, facts) -> list[dict]:
    accuracy = (logits.argmax(-1) == np.asarray(labels)[None]).mean(axis=1)
    rows = []
    for j, i in enumerate(indices):
        rows.append(
            {
                "index": i,
                "seeds": seeds[j].as_dict(),
                "hyperparameters": {
                    name: float(config.per_run(name)[i]) for name in ("lr", "wd", "momentum", "label_smoothing")
                },
                "poke": {
                    "step": int(config.per_run("poke_step")[i]),
                    "index": int(config.per_run("poke_index")[i]),
                    "factor": config.poke_factor,
                },
                "test_accuracy": float(accuracy[j]),
                "final_train_loss": float(facts["train_loss"][j]),
                "status": "diverged" if bool(facts["diverged"][j]) else "finished",
            }
        )
    return rows


def summarize(logits: np.ndarray, labels: np.ndarray, runs: list[dict]) -> dict:
    """Accuracy statistics over finished runs, plus the estimator report when ≥ 2 finished."""
    statuses = [r["status"] for r in runs]
    summary = outputs.accuracy_summary(np.asarray([r["test_accuracy"] for r in runs]), statuses)
    finished = np.asarray([s == "finished" for s in statuses])
    if finished.sum() >= 2:
        from vmaptrain import estimators

        summary["estimators"] = estimators.report(np.asarray(labels), logits=np.asarray(logits)[finished])
    return summary


def load_result(workdir: str) -> StudyResult:
    """Read a finished workdir back."""
    logits = workdirs.load_logits(workdir).astype(np.float32)
    try:
        labels = np.load(os.path.join(workdir, "labels.npy"), allow_pickle=False)
        runs = store.read_json(os.path.join(workdir, "runs.json"))
        summary = store.read_json(os.path.join(workdir, "summary.json"))
    except (OSError, ValueError) as err:
        raise StudyError(
            f"finished workdir {workdir} is damaged ({err}); delete summary.json and rerun to "
            f"reassemble the outputs from predictions/"
        ) from None
    snapshots = {e: s.astype(np.float32) for e, s in workdirs.load_snapshots(workdir, len(logits)).items()}
    return StudyResult(logits=logits, labels=labels, runs=runs, summary=summary, snapshots=snapshots)
