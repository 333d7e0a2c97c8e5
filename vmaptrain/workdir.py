"""A study's workdir: claiming it, checking it holds this study, the append-only predictions
store, and assembling the final outputs.

Layout: config.json · checkpoints/group_A-B/ (orbax, while a group trains) ·
predictions/runs_A-B.npy + runs_A-B.json (per finished block of runs; the .json is written
last and marks the block complete) · metrics.jsonl and tensorboard/run_NNNNN/ (per-epoch curves,
`vmaptrain.metrics`) · weights/runs_A-B/ (orbax, with keep_weights) · logits.npy, labels.npy,
runs.json, summary.json, accuracy_hist.png, loss_curves.png (assembled at the end; summary.json
last) · timings.json (the last call's phase clock, `study.Phases`; after summary.json).
"""

from __future__ import annotations

import glob
import os
import re
import shutil

import numpy as np

from vmaptrain import metrics, outputs, store
from vmaptrain.config import StudyConfig, StudyError

BLOCK = re.compile(r"runs_(\d{6})-(\d{6})\.json$")


def check(workdir: str, config: StudyConfig, overwrite: bool) -> bool:
    """Read-only: True if the workdir already holds this finished study.

    A workdir of another study is refused (naming the differing fields) unless `overwrite`.
    """
    config_path = os.path.join(workdir, "config.json")
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise StudyError(f"workdir {workdir} exists and is not a directory")
    if not os.path.exists(config_path) or overwrite:
        return False
    try:
        saved = StudyConfig.from_json(store.read_json(config_path)["config"])
    except (ValueError, KeyError, TypeError) as err:
        raise StudyError(
            f"{config_path} is not a vmaptrain config ({str(err).splitlines()[0]}); use another workdir or --overwrite"
        ) from None
    differing = config.differences(saved)
    if differing:
        details = ", ".join(f"{f}: saved {getattr(saved, f)!r} vs now {getattr(config, f)!r}" for f in differing)
        raise StudyError(f"workdir {workdir} holds a different study ({details}); use another workdir or --overwrite")
    return os.path.exists(os.path.join(workdir, "summary.json"))


def claim(workdir: str, config: StudyConfig, overwrite: bool, is_writer: bool, environment: dict | None = None) -> None:
    """Create the workdir and record the config before any training.

    With `overwrite`, the previous study's files are removed first (that is what was asked).
    """
    try:
        if overwrite and is_writer:
            for name in ("checkpoints", "predictions", WEIGHTS, metrics.TENSORBOARD):
                shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
            for name in outputs.FILES + (metrics.FILE, "loss_curves.png"):
                path = os.path.join(workdir, name)
                if os.path.exists(path):
                    os.unlink(path)
        os.makedirs(os.path.join(workdir, "predictions"), exist_ok=True)
        if is_writer:
            store.write_json(
                os.path.join(workdir, "config.json"),
                {"config": config.to_json(), "versions": outputs.versions(), "environment": environment or {}},
            )
    except OSError as err:
        raise StudyError(f"cannot write to workdir {workdir}: {err.strerror or err}") from None


def checkpoint_dir(workdir: str, start: int, end: int) -> str:
    return os.path.join(workdir, "checkpoints", f"group_{start:06d}-{end:06d}")


def _block_paths(workdir: str, start: int, end: int) -> tuple[str, str]:
    stem = os.path.join(workdir, "predictions", f"runs_{start:06d}-{end:06d}")
    return stem + ".npy", stem + ".json"


def write_block(workdir: str, start: int, logits: np.ndarray, runs: list[dict]) -> None:
    """Append the predictions of runs start..start+len-1 (atomic; .json marks completion)."""
    npy, meta = _block_paths(workdir, start, start + len(runs))
    store.write_npy(npy, logits.astype(np.float16))
    store.write_json(meta, runs)


def finished_runs(workdir: str) -> set[int]:
    """Runs whose predictions block is complete; a damaged block stops the study before training."""
    done = set()
    for path in glob.glob(os.path.join(workdir, "predictions", "runs_*.json")):
        match = BLOCK.search(path)
        if match and os.path.exists(path[:-5] + ".npy"):
            start, end = int(match.group(1)), int(match.group(2))
            _check_block(path, end - start)
            done.update(range(start, end))
    return done


def _check_block(meta_path: str, num_runs: int) -> None:
    npy = meta_path[:-5] + ".npy"
    try:
        block = np.load(npy, mmap_mode="r", allow_pickle=False)
        rows = store.read_json(meta_path)
        intact = block.shape[0] == num_runs == len(rows)
    except (OSError, ValueError) as err:
        intact, reason = False, str(err)
    else:
        reason = f"holds {block.shape[0]} runs, expected {num_runs}"
    if not intact:
        raise StudyError(
            f"predictions block {npy} is damaged ({reason}); delete it and its .json and rerun to retrain those runs"
        )


def assemble(workdir: str, num_runs: int) -> tuple[np.ndarray, list[dict]]:
    """All blocks → ([runs, n, k] float16 logits, runs rows) in run order."""
    blocks = []
    for path in glob.glob(os.path.join(workdir, "predictions", "runs_*.json")):
        match = BLOCK.search(path)
        if match:
            blocks.append((int(match.group(1)), int(match.group(2)), path))
    blocks.sort()
    logits, runs, expected = [], [], 0
    for start, end, path in blocks:
        if start != expected:
            raise StudyError(f"predictions store in {workdir} is missing runs {expected}..{start - 1}")
        try:
            block = np.load(path[:-5] + ".npy", allow_pickle=False)
            rows = store.read_json(path)
        except (OSError, ValueError) as err:
            raise StudyError(
                f"predictions block {path[:-5]}.npy is unreadable ({err}); delete it and rerun to retrain those runs"
            ) from None
        if block.shape[0] != end - start or len(rows) != end - start:
            raise StudyError(
                f"predictions block {path[:-5]}.npy holds {block.shape[0]} runs, "
                f"expected {end - start}; delete it and rerun to retrain those runs"
            )
        logits.append(block)
        runs.extend(rows)
        expected = end
    if expected != num_runs:
        raise StudyError(f"predictions store in {workdir} holds {expected} of {num_runs} runs")
    return np.concatenate(logits), runs


def load_logits(workdir: str) -> np.ndarray:
    path = os.path.join(workdir, "logits.npy")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise StudyError(
            f"{path} is unreadable ({err}); delete it and summary.json and rerun to reassemble it from predictions/"
        ) from None


SNAPSHOT = re.compile(r"epoch_(\d{4})_runs_(\d{6})-(\d{6})\.npy$")


def write_snapshot(workdir: str, epoch: int, start: int, logits: np.ndarray) -> None:
    """Test logits of runs start.. after `epoch` epochs (snapshot ensembles), atomically."""
    name = f"epoch_{epoch:04d}_runs_{start:06d}-{start + len(logits):06d}.npy"
    directory = os.path.join(workdir, "predictions", "snapshots")
    os.makedirs(directory, exist_ok=True)
    store.write_npy(os.path.join(directory, name), logits.astype(np.float16))


def load_snapshots(workdir: str, num_runs: int) -> dict[int, np.ndarray]:
    """{epoch: [runs, n, k] float16 logits} of every snapshot epoch stored for all runs."""
    by_epoch: dict[int, list] = {}
    for path in glob.glob(os.path.join(workdir, "predictions", "snapshots", "epoch_*.npy")):
        match = SNAPSHOT.search(path)
        if match:
            epoch, start, end = (int(g) for g in match.groups())
            by_epoch.setdefault(epoch, []).append((start, end, path))
    snapshots = {}
    for epoch, blocks in sorted(by_epoch.items()):
        blocks.sort()
        if [b[0] for b in blocks] != [0] + [b[1] for b in blocks[:-1]] or blocks[-1][1] != num_runs:
            raise StudyError(
                f"snapshot store of epoch {epoch} in {workdir} does not cover runs 0..{num_runs - 1}; "
                f"delete predictions/ (or use --overwrite) and rerun"
            )
        try:
            snapshots[epoch] = np.concatenate([np.load(path, allow_pickle=False) for _, _, path in blocks])
        except (OSError, ValueError) as err:
            raise StudyError(
                f"a snapshot of epoch {epoch} in {workdir} is unreadable ({err}); delete "
                f"predictions/ (or use --overwrite) and rerun"
            ) from None
    return snapshots


WEIGHTS = "weights"
WEIGHT_BLOCK = re.compile(r"^runs_(\d{6})-(\d{6})$")


def write_weights(workdir: str, start: int, state) -> None:
    """Final {params, batch_stats} of runs start.. (stacked host arrays), as an orbax checkpoint;
    orbax writes to a temporary directory and renames it, so a block is whole or absent."""
    import orbax.checkpoint as ocp

    runs = len(state.step)
    path = os.path.abspath(os.path.join(workdir, WEIGHTS, f"runs_{start:06d}-{start + runs:06d}"))
    shutil.rmtree(path, ignore_errors=True)
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, variables)


def load_weights(workdir: str, like):
    """Every run's final variables (stacked, host arrays) saved by `write_weights`, or None when
    some run's block is missing. `like` is the abstract stacked tree of all runs."""
    import jax
    import orbax.checkpoint as ocp

    root = os.path.join(workdir, WEIGHTS)
    blocks = sorted(
        (int(m.group(1)), int(m.group(2)), name)
        for name in (os.listdir(root) if os.path.isdir(root) else [])
        if (m := WEIGHT_BLOCK.match(name))
    )
    num_runs = jax.tree.leaves(like)[0].shape[0]
    if [b[0] for b in blocks] != [0] + [b[1] for b in blocks[:-1]] or not blocks or blocks[-1][1] != num_runs:
        return None
    parts = []
    with ocp.StandardCheckpointer() as checkpointer:
        for start, end, name in blocks:
            target = jax.tree.map(lambda a: jax.ShapeDtypeStruct((end - start,) + a.shape[1:], a.dtype), like)
            try:
                parts.append(checkpointer.restore(os.path.abspath(os.path.join(root, name)), target))
            except Exception as err:  # orbax raises many types for a damaged directory
                raise StudyError(
                    f"weights block {os.path.join(root, name)} cannot be read ({type(err).__name__}); delete "
                    f"it and rerun the study with keep_weights to save it again"
                ) from None
    return jax.tree.map(lambda *leaves: np.concatenate([np.asarray(x) for x in leaves]), *parts)
