"""A study's workdir: claiming it, checking it holds this study, the append-only predictions
store, and assembling the final outputs.

Layout: config.json · checkpoints/group_A-B/ (orbax, while a group trains) ·
predictions/runs_A-B.npy + runs_A-B.json (per finished block of runs; the .json is written
last and marks the block complete) · metrics.jsonl and tensorboard/run_NNNNN/ (per-epoch curves,
`vmaptrain.metrics`) · weights/runs_A-B/ (orbax, with keep_weights) · logits.npy, labels.npy,
runs.json, summary.json, accuracy_hist.png, loss_curves.png (assembled at the end; summary.json
last) · timings.json (the last call's phase clock, `study.Phases`; after summary.json).

A finished study records the sha256 of every predictions block file in config.json ("blocks"),
and a study grown to more runs appends {"from", "to", "utc"} to its "growth" list. Growing adds
blocks and never rewrites one: `check` refuses a study whose recorded blocks were altered.
"""

from __future__ import annotations

import dataclasses
import datetime
import glob
import hashlib
import json
import os
import re
import shutil

import numpy as np

from vmaptrain import metrics, outputs, store
from vmaptrain.config import StudyConfig, StudyError

BLOCK = re.compile(r"runs_(\d{6})-(\d{6})\.json$")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What `check` found in a workdir: this finished study (read it back), the finished first
    `grows_from` runs of this study (train the others), or neither (start, or resume)."""

    finished: bool = False
    grows_from: int | None = None


def check(workdir: str, config: StudyConfig, overwrite: bool) -> Verdict:
    """Read-only: what the workdir holds for `config`.

    A workdir of another study is refused (naming the differing fields) unless `overwrite`; so is
    one of this study with more runs, one with fewer that is unfinished, and one with fewer whose
    predictions blocks are no longer those it finished with.
    """
    config_path = os.path.join(workdir, "config.json")
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise StudyError(f"workdir {workdir} exists and is not a directory")
    if not os.path.exists(config_path) or overwrite:
        return Verdict()
    try:
        record = store.read_json(config_path)
        saved = StudyConfig.from_json(record["config"])
    except (ValueError, KeyError, TypeError) as err:
        raise StudyError(
            f"{config_path} is not a vmaptrain config ({str(err).splitlines()[0]}); use another workdir or --overwrite"
        ) from None
    finished = os.path.exists(os.path.join(workdir, "summary.json"))
    resized = saved.num_seeds != config.num_seeds
    differing = ["num_seeds"] + config.resize_conflicts(saved) if resized else config.differences(saved)
    if differing == ["num_seeds"]:
        if saved.num_seeds > config.num_seeds:
            raise StudyError(
                f"workdir {workdir} holds this study with {saved.num_seeds} runs and num_seeds is "
                f"{config.num_seeds}: a study does not shrink; rerun with num_seeds={saved.num_seeds} and select "
                f"runs in Python with vmaptrain.study.load_result({workdir!r}, runs=range({config.num_seeds})), "
                f"or use another workdir"
            )
        if not finished:
            raise StudyError(
                f"workdir {workdir} holds this study with {saved.num_seeds} runs, unfinished: rerun with "
                f"num_seeds={saved.num_seeds} to finish it, then with num_seeds={config.num_seeds} to grow it"
            )
        _check_finished_blocks(workdir, record)
        return Verdict(grows_from=saved.num_seeds)
    if differing:
        details = ", ".join(f"{f}: saved {getattr(saved, f)!r} vs now {getattr(config, f)!r}" for f in differing)
        growing = " (a study grows by num_seeds alone, per-run lists going on from the saved ones)"
        raise StudyError(
            f"workdir {workdir} holds a different study ({details})"
            f"{growing if config.num_seeds > saved.num_seeds else ''}; use another workdir or --overwrite"
        )
    return Verdict(finished=finished)


def claim(
    workdir: str,
    config: StudyConfig,
    overwrite: bool,
    is_writer: bool,
    environment: dict | None = None,
    grows_from: int | None = None,
) -> None:
    """Create the workdir and record the config before any training.

    With `overwrite`, the previous study's files are removed first (that is what was asked).
    Otherwise the record of the finished blocks and of past growth is kept; with `grows_from`
    (what `check` found) the growth is recorded and summary.json, the mark of a finished study,
    removed first: until it is written again the workdir holds an unfinished study of the new size.
    """
    config_path = os.path.join(workdir, "config.json")
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
            record = {"config": config.to_json(), "versions": outputs.versions(), "environment": environment or {}}
            saved = {} if overwrite else _saved_record(config_path)
            for key in ("growth", "blocks"):
                if key in saved:
                    record[key] = saved[key]
            if grows_from is not None:
                summary = os.path.join(workdir, "summary.json")
                if os.path.exists(summary):
                    os.unlink(summary)
                utc = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
                growth = {"from": grows_from, "to": config.num_seeds, "utc": utc}
                record["growth"] = record.get("growth", []) + [growth]
            store.write_json(config_path, record)
    except OSError as err:
        raise StudyError(f"cannot write to workdir {workdir}: {err.strerror or err}") from None


def _saved_record(config_path: str) -> dict:
    """The workdir's config.json record, or {} where there is none to keep."""
    try:
        record = store.read_json(config_path)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


BLOCK_FILE = re.compile(r"^runs_\d{6}-\d{6}\.(npy|json)$")


def record_blocks(workdir: str) -> None:
    """Record in config.json the sha256 of every predictions block file of the finished study,
    which is what a later growth checks the blocks against."""
    directory = os.path.join(workdir, "predictions")
    names = sorted(name for name in os.listdir(directory) if BLOCK_FILE.match(name))
    config_path = os.path.join(workdir, "config.json")
    record = store.read_json(config_path)
    record["blocks"] = {name: _sha256(os.path.join(directory, name)) for name in names}
    store.write_json(config_path, record)


def _check_finished_blocks(workdir: str, record: dict) -> None:
    """Refuse to grow a study whose stored blocks differ from those it finished with: the grown
    study would mix runs that are not the finished study's. A deleted block is no alteration
    (its runs are trained again); a study finished before blocks were recorded is checked
    against its assembled logits.npy and runs.json instead."""
    recorded = record.get("blocks")
    if recorded is None:
        altered = _blocks_unlike_outputs(workdir)
    else:
        paths = [(os.path.join(workdir, "predictions", name), digest) for name, digest in sorted(recorded.items())]
        altered = next((p for p, digest in paths if os.path.exists(p) and _sha256(p) != digest), None)
    if altered:
        stem = altered[: -len(".npy")] if altered.endswith(".npy") else altered[: -len(".json")]
        raise StudyError(
            f"cannot grow workdir {workdir}: predictions block {altered} is not the one the finished study "
            f"stored (sha256 recorded in config.json); restore it, or delete {stem}.npy and {stem}.json to "
            f"train those runs again, then rerun"
        )


def damaged(workdir: str, err: Exception) -> StudyError:
    """The error of a finished workdir whose outputs cannot be read: they are reassembled from the
    predictions blocks once summary.json, the mark of a finished study, is gone."""
    return StudyError(
        f"finished workdir {workdir} is damaged ({err}); delete summary.json and rerun to reassemble the "
        f"outputs from predictions/"
    )


def _blocks_unlike_outputs(workdir: str) -> str | None:
    """The first block file whose runs differ from the finished study's logits.npy / runs.json."""
    logits = load_logits(workdir)
    try:
        runs = store.read_json(os.path.join(workdir, "runs.json"))
    except (OSError, ValueError) as err:
        raise damaged(workdir, err) from None
    for path in sorted(glob.glob(os.path.join(workdir, "predictions", "runs_*.json"))):
        match = BLOCK.search(path)
        if not match or not os.path.exists(path[:-5] + ".npy"):
            continue
        start, end = int(match.group(1)), int(match.group(2))
        try:
            block = np.load(path[:-5] + ".npy", allow_pickle=False)
            rows = store.read_json(path)
        except (OSError, ValueError):
            return path[:-5] + ".npy"
        if block.shape != logits[start:end].shape or block.tobytes() != logits[start:end].tobytes():
            return path[:-5] + ".npy"
        # As JSON text, so that a diverged run's NaN loss compares equal to itself.
        if json.dumps(rows, sort_keys=True) != json.dumps(runs[start:end], sort_keys=True):
            return path
    return None


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
