"""The Python API: a configuration in, a trained seed study (and its workdir) out."""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from vmaptrain import augment, optim, outputs, parallel, poke, rng, store
from vmaptrain.config import StudyConfig, StudyError
from vmaptrain.data import DataError, Dataset, load_dataset, normalize
from vmaptrain.models import ModelError, make_model
from vmaptrain.train import Hyper, TrainSpec


@dataclasses.dataclass
class StudyResult:
    logits: np.ndarray          # float32 [runs, test examples, classes]
    labels: np.ndarray          # int32 [test examples]
    runs: list[dict]
    summary: dict
    state: object = None        # final stacked RunState (host arrays) when trained in this process
    spec: TrainSpec | None = None


class Progress:
    """One line per epoch on stderr: epoch, runs done, runs/s, ETA."""

    def __init__(self, total_runs: int, epochs: int, stream=sys.stderr):
        self.total_runs, self.epochs, self.stream = total_runs, max(epochs, 1), stream
        self.start = time.perf_counter()
        self.run_epochs = 0.0

    def update(self, epoch: int, runs_done: int, group_runs: int, label: str = "") -> None:
        self.run_epochs += group_runs
        elapsed = time.perf_counter() - self.start
        runs_per_s = self.run_epochs / self.epochs / max(elapsed, 1e-9)
        remaining = self.total_runs - self.run_epochs / self.epochs
        eta = remaining / runs_per_s if runs_per_s > 0 else float("inf")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "?"
        self.stream.write(f"{label}epoch {epoch}/{self.epochs} | runs done {runs_done}/{self.total_runs} | "
                          f"{runs_per_s:.3f} runs/s | ETA {eta_text}\n")
        self.stream.flush()


def _check_data(config: StudyConfig, data: Dataset) -> int:
    n = len(data.y_train)
    if config.batch_size > n:
        raise StudyError(f"batch_size {config.batch_size} is larger than the training set ({n} examples)")
    return n // config.batch_size


def build_spec(config: StudyConfig, data: Dataset) -> TrainSpec:
    steps_per_epoch = _check_data(config, data)
    total = max(config.epochs * steps_per_epoch, 1)
    try:
        model = make_model(config.model, data.num_classes, config.width)
        aug = augment.AugmentConfig(flip=config.flip, translate=config.translate,
                                    translate_mode=config.translate_mode, cutout=config.cutout)
        aug.check_image_size(*data.x_train.shape[1:3])
        schedule = optim.Schedule(config.schedule, total, int(round(config.warmup_epochs * steps_per_epoch)))
    except (ModelError, ValueError) as err:
        raise StudyError(str(err)) from None
    poke_path = None
    if any(step >= 0 for step in config.per_run("poke_step")):
        poke_path = config.poke_param or model.default_poke_param
    return TrainSpec(model=model, optimizer=config.optimizer, schedule=schedule,
                     batch_size=config.batch_size, steps_per_epoch=steps_per_epoch,
                     augment=aug, poke_path=poke_path)


def _check_model(spec: TrainSpec, data: Dataset) -> None:
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
    """The training set and normalisation constants, put on the device once."""
    # Cutout fills with the mean colour truncated to integers, as the paper's pipeline did.
    fill = np.clip(np.floor(data.mean), 0, 255).astype(data.x_train.dtype)
    return {
        "x_train": jnp.asarray(data.x_train),
        "y_train": jnp.asarray(data.y_train, jnp.int32),
        "mean": jnp.asarray(data.mean, jnp.float32),
        "std": jnp.asarray(data.std, jnp.float32),
        "fill": jnp.asarray(fill),
    }


def run_inputs(config: StudyConfig, indices: list[int]):
    """Per-run init inputs for the runs `indices`: keys, hyperparameters, pokes (stacked)."""
    vary = rng.parse_vary(config.vary)
    seeds = [rng.run_seeds(i, vary, config.fixed_seed) for i in indices]
    keys = {s: jnp.asarray(rng.stream_key_data(config.seed, seeds, s)) for s in rng.STREAMS}

    def column(name, dtype):
        values = config.per_run(name)
        return jnp.asarray([values[i] for i in indices], dtype)

    hyper = Hyper(lr=column("lr", jnp.float32), wd=column("wd", jnp.float32),
                  momentum=column("momentum", jnp.float32),
                  label_smoothing=column("label_smoothing", jnp.float32))
    pokes = poke.Poke(step=column("poke_step", jnp.int32), index=column("poke_index", jnp.int32),
                      factor=jnp.full((len(indices),), config.poke_factor, jnp.float32))
    return seeds, (keys["init"], keys["order"], keys["aug"], hyper, pokes)


def evaluate(programs: parallel.StackedPrograms, state, x_test: np.ndarray, data: Dataset,
             batch: int) -> np.ndarray:
    """Per-run logits on the test split, [runs, examples, classes] float32."""
    n = len(x_test)
    batch = min(batch, n)
    padded = math.ceil(n / batch) * batch
    # Pad to whole batches (BN is in eval mode, so padding never touches real examples).
    images = np.concatenate([x_test, np.zeros((padded - n,) + x_test.shape[1:], x_test.dtype)])
    mean, std = jnp.asarray(data.mean), jnp.asarray(data.std)
    chunks = []
    for start in range(0, padded, batch):
        x = normalize(jnp.asarray(images[start:start + batch]), mean, std)
        chunks.append(programs.eval(state, x))
    return np.concatenate([np.asarray(c, np.float32) for c in chunks], axis=1)[:, :n]


def train_group(programs, config: StudyConfig, data: Dataset, dev: dict, indices: list[int],
                progress: Progress | None, runs_done: int):
    """Train the runs `indices` together; returns (logits, per-run final state facts)."""
    spec = programs.spec
    seeds, inputs = run_inputs(config, indices)
    sample = jnp.zeros((1,) + data.x_train.shape[1:], jnp.float32)
    state = programs.init(inputs, sample)
    n = len(data.y_train)
    last_loss = jnp.full((len(indices),), jnp.nan)
    for epoch in range(config.epochs):
        permutations = programs.permutations(state.order_key, epoch, n)
        loss_sum = jnp.zeros((len(indices),))
        for k in range(spec.steps_per_epoch):
            state, metrics = programs.step(state, permutations, dev, np.int32(epoch), np.int32(k))
            loss_sum = loss_sum + metrics["loss"]
        last_loss = loss_sum / spec.steps_per_epoch
        last_loss.block_until_ready()
        if progress is not None:
            finished_now = len(indices) if epoch + 1 == config.epochs else 0
            progress.update(epoch + 1, runs_done + finished_now, len(indices))
    logits = evaluate(programs, state, data.x_test, data, config.eval_batch_size)
    facts = {"diverged": np.asarray(state.diverged), "train_loss": np.asarray(last_loss, np.float64),
             "state": jax.device_get(state)}
    return seeds, logits, facts


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
        if workdir is not None:
            done = check_workdir(workdir, config, overwrite)
            if done is not None:
                return done
        try:
            data = load_dataset(config.dataset, data_dir=config.data_dir, manual_dir=config.manual_dir)
        except DataError as err:
            raise StudyError(str(err)) from None
        spec = build_spec(config, data)
        _check_model(spec, data)
        if workdir is not None:  # only a study that can start claims its workdir
            claim_workdir(workdir, config)
        programs = parallel.programs_for(spec, config.strategy)
        dev = device_data(data)
        group = config.group_size or config.num_seeds
        meter = Progress(config.num_seeds, config.epochs) if progress else None
        logits, runs, states = [], [], []
        for start in range(0, config.num_seeds, group):
            indices = list(range(start, min(start + group, config.num_seeds)))
            seeds, group_logits, facts = train_group(programs, config, data, dev, indices, meter, start)
            logits.append(group_logits)
            states.append(facts["state"])
            runs.extend(describe_runs(config, indices, seeds, group_logits, data.y_test, facts))
            if meter is not None and config.epochs == 0:
                meter.update(0, indices[-1] + 1, len(indices))
        logits = np.concatenate(logits)
        summary = summarize(logits, data.y_test, runs)
        state = jax.tree.map(lambda *parts: np.concatenate(parts), *states)
        result = StudyResult(logits=logits, labels=np.asarray(data.y_test, np.int32), runs=runs, summary=summary,
                             state=state, spec=spec)
        if workdir is not None:
            title = f"{config.model} on {config.dataset}: {config.num_seeds} runs, {config.epochs} epochs"
            outputs.write_results(workdir, logits, result.labels, runs, summary, title)
        return result


def describe_runs(config, indices, seeds, logits, labels, facts) -> list[dict]:
    accuracy = (logits.argmax(-1) == np.asarray(labels)[None]).mean(axis=1)
    rows = []
    for j, i in enumerate(indices):
        rows.append({
            "index": i,
            "seeds": seeds[j].as_dict(),
            "hyperparameters": {name: float(config.per_run(name)[i])
                                for name in ("lr", "wd", "momentum", "label_smoothing")},
            "poke": {"step": int(config.per_run("poke_step")[i]), "index": int(config.per_run("poke_index")[i]),
                     "factor": config.poke_factor},
            "test_accuracy": float(accuracy[j]),
            "final_train_loss": float(facts["train_loss"][j]),
            "status": "diverged" if bool(facts["diverged"][j]) else "finished",
        })
    return rows


def summarize(logits: np.ndarray, labels: np.ndarray, runs: list[dict]) -> dict:
    statuses = [r["status"] for r in runs]
    summary = outputs.accuracy_summary(np.asarray([r["test_accuracy"] for r in runs]), statuses)
    finished = np.asarray([s == "finished" for s in statuses])
    if finished.sum() >= 2:
        from vmaptrain import estimators

        if not hasattr(estimators, "report"):  # TEMP until the estimators land
            return summary
        report = estimators.report(np.asarray(labels), logits=logits[finished])
        summary["estimators"] = report
    return summary


def check_workdir(workdir: str, config: StudyConfig, overwrite: bool):
    """Read-only check of a workdir. Returns the saved result if it already holds this study."""
    config_path = os.path.join(workdir, "config.json")
    if os.path.exists(config_path) and not overwrite:
        try:
            saved = StudyConfig.from_json(store.read_json(config_path)["config"])
        except (ValueError, KeyError, TypeError) as err:
            raise StudyError(f"{config_path} is not a vmaptrain config ({err}); use another workdir or --overwrite") from None
        differing = config.differences(saved)
        if differing:
            details = ", ".join(f"{f}: saved {getattr(saved, f)!r} vs now {getattr(config, f)!r}" for f in differing)
            raise StudyError(f"workdir {workdir} holds a different study ({details}); use another workdir or --overwrite")
        if os.path.exists(os.path.join(workdir, "summary.json")):
            return load_result(workdir)
    return None


def claim_workdir(workdir: str, config: StudyConfig) -> None:
    """Create the workdir and record the config (with versions) before any training."""
    config_path = os.path.join(workdir, "config.json")
    try:
        os.makedirs(workdir, exist_ok=True)
        store.write_json(config_path, {"config": config.to_json(), "versions": outputs.versions()})
    except OSError as err:
        raise StudyError(f"cannot write to workdir {workdir}: {err.strerror or err}") from None


def load_result(workdir: str) -> StudyResult:
    """Read a finished workdir back."""
    logits = np.load(os.path.join(workdir, "logits.npy"), allow_pickle=False).astype(np.float32)
    labels = np.load(os.path.join(workdir, "labels.npy"), allow_pickle=False)
    return StudyResult(logits=logits, labels=labels, runs=store.read_json(os.path.join(workdir, "runs.json")),
                       summary=store.read_json(os.path.join(workdir, "summary.json")))
