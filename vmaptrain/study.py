"""The Python API: a configuration in, a trained seed study (and its workdir) out.

A study trains its runs in groups with the engine's `GroupTrainer` (runs stacked, sharded over
the devices, batched per device by a strategy); this module owns what is around it: the
workdir, resume, the hooks that write checkpoints, snapshots, metrics and progress, and the
assembly of the outputs. With a workdir the study resumes by default: a group restarts from its
latest orbax checkpoint, and runs whose predictions are already stored are skipped.

A finished study grows: run again with a larger num_seeds (per-run lists may go on past the
saved ones; nothing else may change), it trains only the new runs and leaves the stored blocks
of the old ones untouched. Run i's keys and inputs depend on i alone (`vmaptrain.rng`), so the
grown study is bitwise the study of the larger size from the start wherever a run's numerics do
not depend on the runs that share its program: the dense forms "unrolled" and "serial" with any
options (on CPU, tests/test_parallel.py and tests/test_grow.py), or any strategy whose groups
come out the same (a `group_size` that divides the old num_seeds). Vmapped forms ("vmap",
"chunk:K", "map:K") round differently in a block of another size, so there the new runs agree
with a from-scratch study to float rounding only. A smaller num_seeds is refused;
`load_result(workdir, runs=range(k))` or `StudyResult.select` reads a subset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time

import jax
import numpy as np

from vmaptrain import autotune, metrics, outputs, store
from vmaptrain import workdir as workdirs
from vmaptrain.checkpoint import GroupCheckpoints
from vmaptrain.config import StudyConfig, StudyError
from vmaptrain.data import DataError, Dataset, load_dataset
from vmaptrain.engine import hooks, hostmem, placement
from vmaptrain.engine.hooks import StudyInterrupted, TermGuard
from vmaptrain.engine.programs import programs_for
from vmaptrain.engine.strategy import default_group_size
from vmaptrain.engine.trainer import GroupTrainer
from vmaptrain.specs import build_spec, check_model, variables_shape
from vmaptrain.train import TrainSpec

__all__ = [
    "SeedStudy",
    "StudyResult",
    "StudyInterrupted",
    "TermGuard",
    "final_variables",
    "load_result",
    "summarize",
]


@dataclasses.dataclass
class StudyResult:
    logits: np.ndarray  # float32 [runs, test examples, classes]
    labels: np.ndarray  # int32 [test examples]
    runs: list[dict]
    summary: dict
    state: object = None  # final stacked RunState (host arrays) when all runs trained in this call
    spec: TrainSpec | None = None
    snapshots: dict = dataclasses.field(default_factory=dict)  # {epoch: [runs, n, k] logits}
    timings: dict | None = None  # wall seconds per phase of this call (`Phases`); None when read back

    def select(self, runs) -> StudyResult:
        """The runs `runs` (indices, e.g. range(8)) as a study of their own: their logits, rows,
        snapshots and final state where kept, and the summary recomputed over them. The first k
        runs of a study are the study with num_seeds=k (run i depends on i alone)."""
        indices = [int(i) for i in runs]
        total = len(self.runs)
        if not indices or len(set(indices)) != len(indices) or not all(0 <= i < total for i in indices):
            raise StudyError(f"runs must be distinct indices in 0..{total - 1}, got {indices}")
        chosen = np.asarray(indices)
        rows = [self.runs[i] for i in indices]
        logits = self.logits[chosen]
        return StudyResult(
            logits=logits,
            labels=self.labels,
            runs=rows,
            summary=summarize(logits, self.labels, rows),
            state=None if self.state is None else jax.tree.map(lambda a: a[chosen], self.state),
            spec=self.spec,
            snapshots={epoch: s[chosen] for epoch, s in self.snapshots.items()},
        )


class Phases:
    """Wall seconds per phase of one study call, where the user waits: data, setup, compile
    (until the first step has run), train, evaluate, estimators, plots, write. Written to the
    workdir's timings.json (not part of the bitwise-reproducible outputs)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds


@dataclasses.dataclass
class _Group:
    """What one trained group hands back: this process's runs."""

    indices: list[int]
    seeds: list
    logits: np.ndarray
    train_loss: np.ndarray
    diverged: np.ndarray
    state: object
    snapshots: dict


def train_group(
    trainer: GroupTrainer,
    start: int,
    end: int,
    workdir: str | None,
    guard: TermGuard,
    meter: hooks.Progress,
    sink: metrics.MetricsWriter | None,
) -> _Group:
    """Train runs start..end-1 together (resuming from the group's checkpoint), with the study's
    hooks: metrics, snapshots, progress, then checkpoint/SIGTERM (so what an epoch wrote is
    on disk before the checkpoint that skips it)."""
    config = trainer.config
    state = trainer.init(range(start, end))
    ckpt = GroupCheckpoints(workdirs.checkpoint_dir(workdir, start, end)) if workdir is not None else None
    if ckpt is not None:
        tree = state.checkpoint_tree()
        restored = ckpt.restore(tree, jax.tree.map(lambda a: a.sharding, tree))
        if restored is not None:
            state = trainer.with_checkpoint(state, *restored)
    write_snapshot = (lambda e, first, lg: workdirs.write_snapshot(workdir, e, first, lg)) if workdir else None
    snapshots = hooks.SnapshotHook(config.snapshot_epochs, write_snapshot)
    hook_list = []
    if sink is not None:
        hook_list.append(hooks.MetricsHook(sink, config.eval_every_epochs, (start, end)))
    hook_list.append(snapshots)
    hook_list.append(hooks.ProgressHook(meter, start, end - start))
    if ckpt is not None:
        hook_list.append(
            hooks.CheckpointHook(ckpt, guard, config.checkpoint_every_steps, config.checkpoint_every_minutes)
        )
    try:
        state = trainer.train(state, hooks=hook_list)
        logits = trainer.evaluate(state)
    finally:
        if ckpt is not None:
            ckpt.close()
    return _Group(
        indices=list(state.indices),
        seeds=list(state.seeds),
        logits=logits,
        train_loss=placement.local_runs(state.last_loss).astype(np.float64),
        diverged=placement.local_runs(state.run.diverged),
        state=placement.local_runs(state.run),
        snapshots=snapshots.logits,
    )


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
        hostmem.prepare_process()  # before this process's first JAX computation, if it is the first
        config = self.config
        writer = jax.process_index() == 0
        verdict = workdirs.check(workdir, config, overwrite) if workdir is not None else workdirs.Verdict()
        if verdict.finished:
            return load_result(workdir)
        if workdir is None and jax.process_count() > 1:
            raise StudyError("a multi-process study needs a workdir (each process writes its own runs there)")
        phases = Phases()
        with phases("data"):
            try:
                data = load_dataset(config.dataset, data_dir=config.data_dir, manual_dir=config.manual_dir)
            except DataError as err:
                raise StudyError(str(err)) from None
        with phases("setup"):
            spec = build_spec(config, data)
            check_model(spec, data)
            trainer, group = self._trainer(config, spec, data, workdir, overwrite, writer, phases, verdict.grows_from)
        phases.add("setup", -phases.seconds.get("autotune", 0.0))  # shown on its own
        finished = workdirs.finished_runs(workdir) if workdir is not None else set()
        meter = hooks.Progress(
            config.num_seeds, trainer.total_steps, trainer.steps_per_epoch, quiet=not (progress and writer)
        )
        sink = metrics.MetricsWriter(workdir, config.tensorboard) if workdir is not None else None
        groups: list[_Group] = []
        runs = []
        guard = TermGuard()
        try:
            with guard.installed():
                for group_start in range(0, config.num_seeds, group):
                    group_end = min(group_start + group, config.num_seeds)
                    stretches = runs_to_train(group_start, group_end, finished, trainer.mesh.devices.size)
                    meter.skip(group_end - group_start - sum(end - start for start, end in stretches))
                    for start, end in stretches:
                        with phases("train"):
                            trained = train_group(trainer, start, end, workdir, guard, meter, sink)
                        with phases("write"):
                            rows = describe_runs(config, trained, data.y_test)
                            if workdir is not None:
                                if config.keep_weights:
                                    workdirs.write_weights(workdir, trained.indices[0], trained.state)
                                workdirs.write_block(workdir, trained.indices[0], trained.logits, rows)
                                _barrier(f"group-{start}")
                                if writer:
                                    shutil.rmtree(workdirs.checkpoint_dir(workdir, start, end), ignore_errors=True)
                        groups.append(trained)
                        runs.extend(rows)
        finally:
            if sink is not None:
                sink.close()
        # The train phase's share that was compilation (until the first step ran) and evaluation.
        for name, seconds in (("compile", meter.compile_s or 0.0), ("evaluate", trainer.eval_seconds)):
            phases.add(name, seconds)
            phases.add("train", -seconds)
        trained_all = sum(len(g.indices) for g in groups) == config.num_seeds
        states = [g.state for g in groups]
        state = jax.tree.map(lambda *parts: np.concatenate(parts), *states) if trained_all and states else None
        if workdir is None:
            logits = np.concatenate([g.logits for g in groups])
            with phases("estimators"):
                summary = summarize(logits, data.y_test, runs)
            snapshots = {e: np.concatenate([g.snapshots[e] for g in groups]) for e in config.snapshot_epochs}
            return StudyResult(
                logits=logits,
                labels=np.asarray(data.y_test, np.int32),
                runs=runs,
                summary=summary,
                state=state,
                spec=spec,
                snapshots=snapshots,
                timings=phases.seconds,
            )
        _barrier("assemble")
        if writer:
            assemble(workdir, config, data, phases)
            store.write_json(os.path.join(workdir, "timings.json"), {k: round(v, 3) for k, v in phases.seconds.items()})
        _barrier("written")
        result = load_result(workdir)
        result.state, result.spec, result.timings = state, spec, phases.seconds
        return result

    def _trainer(self, config, spec, data, workdir, overwrite, writer, phases, grows_from) -> tuple[GroupTrainer, int]:
        """The study's trainer on its programs (autotune first when the strategy says "auto") and
        its runs per group (those of the study's size, grown or not); claims the workdir, since
        from here the study can start."""
        mesh = placement.seed_mesh()
        devices = tuple(mesh.devices.flat)
        strategy = config.parsed_strategy.for_platform(devices[0].platform)
        group = config.group_size or default_group_size(config.num_seeds, strategy, len(devices))
        try:
            placement.check_divisible(config.num_seeds, mesh, "num_seeds")
            placement.check_divisible(group, mesh, "group_size")
        except ValueError as err:
            raise StudyError(str(err)) from None
        if strategy.is_auto:
            with phases("autotune"):
                strategy = autotune.resolve(config, spec, data, devices, group)
        programs = programs_for(spec, strategy, devices)
        if workdir is not None:  # only a study that can start claims its workdir
            workdirs.claim(workdir, config, overwrite, writer, environment=programs.environment, grows_from=grows_from)
        return GroupTrainer(programs, config, data), group


def runs_to_train(start: int, end: int, finished: set[int], devices: int) -> list[tuple[int, int]]:
    """The stretches (first, stop) of the group start..end-1 whose runs have no stored predictions:
    a group that straddles the end of a grown study's old runs trains only the new ones, so the
    old blocks stay as they are. A stretch must fill whole devices; where one would not (a
    multi-process group one of whose processes' blocks is missing), the whole group trains
    again and every process stores the same bits again."""
    stretches: list[tuple[int, int]] = []
    for run in range(start, end):
        if run in finished:
            continue
        if stretches and stretches[-1][1] == run:
            stretches[-1] = (stretches[-1][0], run + 1)
        else:
            stretches.append((run, run + 1))
    if any((stop - first) % devices for first, stop in stretches):
        return [(start, end)]
    return stretches


def final_variables(config: StudyConfig, workdir: str, progress: bool = True):
    """Train (or resume, or read back) a study that keeps its weights (`keep_weights`); its
    final stacked variables {params, batch_stats} (host arrays) and its result (with `spec`).

    A study that finished earlier without keep_weights has only logits: it is retrained.
    """
    config = dataclasses.replace(config, keep_weights=True)
    result = SeedStudy(config).run(workdir, progress=progress)
    if result.state is None:
        data = load_dataset(config.dataset, data_dir=config.data_dir, manual_dir=config.manual_dir)
        result.spec = build_spec(config, data)
        like = variables_shape(result.spec, data.x_train.shape[1:], config.num_seeds)
        variables = workdirs.load_weights(workdir, like)
        if variables is not None:
            return variables, result
        result = SeedStudy(config).run(workdir, overwrite=True, progress=progress)
    return {"params": result.state.params, "batch_stats": result.state.batch_stats}, result


def assemble(workdir: str, config: StudyConfig, data: Dataset, phases: Phases | None = None) -> None:
    """The finished study's outputs from its predictions blocks and metrics (summary.json last)."""
    phases = phases or Phases()
    with phases("write"):
        all_logits, all_runs = workdirs.assemble(workdir, config.num_seeds)
        workdirs.record_blocks(workdir)
    with phases("estimators"):
        summary = summarize(all_logits.astype(np.float32), data.y_test, all_runs)
    title = f"{config.model} on {config.dataset}: {config.num_seeds} runs, {config.epochs} epochs"
    with phases("plots"):
        curves = metrics.loss_curves_png(workdir, f"{config.model} on {config.dataset}")
        if curves is not None:
            store.write_bytes(os.path.join(workdir, "loss_curves.png"), curves)
    with phases("write"):
        outputs.write_results(workdir, all_logits, np.asarray(data.y_test), all_runs, summary, title)


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def describe_runs(config: StudyConfig, group: _Group, labels) -> list[dict]:
    """runs.json rows of a trained group's (this process's) runs."""
    accuracy = (group.logits.argmax(-1) == np.asarray(labels)[None]).mean(axis=1)
    rows = []
    for j, i in enumerate(group.indices):
        rows.append(
            {
                "index": i,
                "seeds": group.seeds[j].as_dict(),
                "hyperparameters": {
                    name: float(config.per_run(name)[i]) for name in ("lr", "wd", "momentum", "label_smoothing")
                },
                "poke": {
                    "step": int(config.per_run("poke_step")[i]),
                    "index": int(config.per_run("poke_index")[i]),
                    "factor": config.poke_factor,
                },
                "test_accuracy": float(accuracy[j]),
                "final_train_loss": float(group.train_loss[j]),
                "status": "diverged" if bool(group.diverged[j]) else "finished",
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


def load_result(workdir: str, runs=None) -> StudyResult:
    """Read a finished workdir back; with `runs` (indices, e.g. range(8)) only those runs
    (`StudyResult.select`)."""
    logits = workdirs.load_logits(workdir).astype(np.float32)
    try:
        labels = np.load(os.path.join(workdir, "labels.npy"), allow_pickle=False)
        rows = store.read_json(os.path.join(workdir, "runs.json"))
        summary = store.read_json(os.path.join(workdir, "summary.json"))
    except (OSError, ValueError) as err:
        raise workdirs.damaged(workdir, err) from None
    snapshots = {e: s.astype(np.float32) for e, s in workdirs.load_snapshots(workdir, len(logits)).items()}
    result = StudyResult(logits=logits, labels=labels, runs=rows, summary=summary, snapshots=snapshots)
    return result if runs is None else result.select(runs)
