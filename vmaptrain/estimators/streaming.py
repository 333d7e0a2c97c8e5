"""One streaming pass over runs that reduces predictions/logits to sufficient statistics.

Everything O(R·n) or O(R·n·k) happens here, in jitted kernels applied to fixed-size chunks
of runs (the last chunk is zero-padded and masked, so each kernel compiles once). What
leaves a chunk is integer-valued (exact in any float/int type) or a small float32 sum that
the host accumulates in float64. The estimators then work on these statistics in numpy
float64: JAX runs without x64 by default, and the variance estimators subtract nearly
equal numbers, so the final O(R + n·k) arithmetic is done on the host in double precision.

The O(R·n) objects kept are the 0/1 correctness matrix (bool, R·n bytes: 0.6 GB for
60k × 10k), needed by the second pass of the pair test, and, unless `keep_predictions=False`,
the predictions (uint8 for k ≤ 256: another R·n bytes), needed by the bootstrap intervals
(`intervals.py`; without predictions they fall back to the correctness matrix and leave out
disagreement and calibration).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vmaptrain.estimators import ensemble
from vmaptrain.estimators.errors import (
    EstimatorInputError,
    check_labels,
    check_logits,
    check_num_classes,
    check_predictions,
)

# Per-run confusion matrices are kept only when the binary-task analysis is affordable:
# 2^(k-1) - 1 tasks, i.e. 511 for k = 10, 2047 for k = 12.
MAX_BINARY_CLASSES = 12
# Upper bound on logits elements per chunk (float32 copy 256 MB; temporaries a few times that).
_LOGIT_CHUNK_ELEMENTS = 2**26


@dataclasses.dataclass(frozen=True)
class LogitStatistics:
    """Per-run statistics that need logits (cross-entropy, Summers & Dinneen diversity)."""

    run_cross_entropy: np.ndarray  # [R] mean cross-entropy of each run, float64
    run_correct: np.ndarray  # [R] correct count of argmax(logits), int64
    pair_ensemble_correct: np.ndarray  # [R//2] correct count of the ensemble of runs 2j, 2j+1
    logit_z_sum: np.ndarray  # [n*k] Σ_r z_r, z_r = standardised flattened logits
    logit_z_norm_sq: float  # Σ_r ‖z_r‖² (≈ R; kept for exact cancellation)


@dataclasses.dataclass(frozen=True)
class StudyStatistics:
    """Sufficient statistics of a study of R runs on n examples with k classes."""

    num_runs: int
    num_examples: int
    num_classes: int
    labels: np.ndarray  # [n] int32
    correct: np.ndarray  # [R, n] bool: run r classifies example i correctly
    run_correct: np.ndarray  # [R] int64 correct count per run
    run_correct_even: np.ndarray  # [R] int64 correct count on examples 0, 2, 4, ...
    example_correct: np.ndarray  # [n] int64 number of runs correct on each example
    votes_by_half: np.ndarray  # [2, n, k] int64 vote counts of even- and odd-indexed runs
    confusion: np.ndarray | None  # [R, k, k] int32 (true, predicted) counts, k ≤ 12 only
    ensemble_curve: list  # [{m, vote, logit}] from ensemble.PrefixEnsembles
    logits: LogitStatistics | None
    predictions: np.ndarray | None = None  # [R, n] predicted classes (smallest unsigned dtype), if kept

    @property
    def votes(self) -> np.ndarray:
        """Vote counts m[i, c] over all runs, [n, k]."""
        return self.votes_by_half.sum(axis=0)

    @property
    def run_correct_odd(self) -> np.ndarray:
        return self.run_correct - self.run_correct_even

    @property
    def num_even_examples(self) -> int:
        return (self.num_examples + 1) // 2

    @property
    def run_accuracy(self) -> np.ndarray:
        return self.run_correct / self.num_examples


@functools.partial(jax.jit, static_argnames=("num_classes", "with_confusion"))
def _prediction_chunk(preds, labels, num_valid, *, num_classes, with_confusion):
    """Counts for one chunk of predictions [c, n]; rows ≥ num_valid are padding."""
    c, n = preds.shape
    k = num_classes
    valid = jnp.arange(c) < num_valid
    correct = (preds == labels[None, :]) & valid[:, None]
    weights = jnp.broadcast_to(valid[:, None], (c, n)).astype(jnp.int32).ravel()
    # Scatter-adds are the fastest way to build count tables on XLA:CPU (a one-hot
    # reduction materialises c·n·k values).
    parity = jnp.arange(c) % 2
    vote_index = ((parity[:, None] * n + jnp.arange(n)[None, :]) * k + preds).ravel()
    votes = jnp.zeros(2 * n * k, jnp.int32).at[vote_index].add(weights, mode="drop")
    out = {
        "correct": correct,
        "run_correct": correct.sum(axis=1, dtype=jnp.int32),
        "run_correct_even": correct[:, ::2].sum(axis=1, dtype=jnp.int32),
        "example_correct": correct.sum(axis=0, dtype=jnp.int32),
        "votes": votes.reshape(2, n, k),
        "min": jnp.min(jnp.where(valid[:, None], preds, 0)),
        "max": jnp.max(jnp.where(valid[:, None], preds, 0)),
    }
    if with_confusion:
        cell = (jnp.arange(c)[:, None] * (k * k) + labels[None, :] * k + preds).ravel()
        confusion = jnp.zeros(c * k * k, jnp.int32).at[cell].add(weights, mode="drop")
        out["confusion"] = confusion.reshape(c, k, k)
    return out


@jax.jit
def _logit_chunk(logits, labels, num_valid):
    """Per-run and summed statistics for one chunk of logits [c, n, k] (c even)."""
    c, n, k = logits.shape
    valid = jnp.arange(c) < num_valid
    x = logits.astype(jnp.float32)
    finite = jnp.all(jnp.isfinite(x) | ~valid[:, None, None])
    preds = jnp.argmax(x, axis=-1).astype(jnp.int32)
    true_logit = jnp.take_along_axis(x, labels[None, :, None], axis=-1)[..., 0]
    cross_entropy = jnp.mean(jax.nn.logsumexp(x, axis=-1) - true_logit, axis=1)
    # Sums over the run axis are written as matmuls with a 0/1 row: XLA:CPU reduces over a
    # leading axis ~4x slower than it multiplies.
    weight = valid.astype(jnp.float32)[None, :]
    flat = jnp.where(valid[:, None], x.reshape(c, n * k), 0.0)
    # Pearson correlation between flattened logit arrays = dot product of standardised
    # vectors; summing them lets the mean over all pairs be read off ‖Σz‖² (see diversity).
    centred = flat - flat.mean(axis=1, keepdims=True)
    norm = jnp.sqrt(jnp.sum(centred * centred, axis=1, keepdims=True))
    z = jnp.where(norm > 0, centred / jnp.where(norm > 0, norm, 1.0), 0.0)
    pair_preds = jnp.argmax(x[0::2] + x[1::2], axis=-1)
    return {
        "finite": finite,
        "preds": preds,
        "run_cross_entropy": cross_entropy,
        "run_correct": jnp.sum(preds == labels[None, :], axis=1, dtype=jnp.int32),
        "pair_correct": jnp.sum(pair_preds == labels[None, :], axis=1, dtype=jnp.int32),
        "logit_sum": (weight @ flat).reshape(n, k),
        "z_sum": (weight @ z)[0],
        "z_norm_sq": jnp.sum(z * z),
    }


def _as_host(array: Any) -> Any:
    """jax arrays become numpy; numpy arrays and memmaps stay as they are (no copy)."""
    return np.asarray(array) if isinstance(array, jax.Array) else array


def _padded_rows(array: Any, start: int, stop: int, rows: int, dtype) -> np.ndarray:
    chunk = np.asarray(array[start:stop])
    if stop - start == rows:
        return chunk.astype(dtype, copy=False)
    out = np.zeros((rows,) + chunk.shape[1:], dtype)
    out[: stop - start] = chunk
    return out


def _max_prediction(preds: Any, chunk_runs: int) -> int:
    return max(int(np.max(preds[s : s + chunk_runs])) for s in range(0, preds.shape[0], chunk_runs))


def chunk_size(chunk_runs: int, num_examples: int, num_classes: int, with_logits: bool) -> int:
    """Even number of runs per chunk (even so that runs 2j, 2j+1 share a chunk)."""
    size = int(chunk_runs)
    if with_logits:
        size = min(size, _LOGIT_CHUNK_ELEMENTS // (num_examples * num_classes))
    size = max(2, size - size % 2)
    return size


def collect_statistics(
    labels: Any,
    *,
    logits: Any = None,
    preds: Any = None,
    num_classes: int | None = None,
    chunk_runs: int = 1024,
    keep_predictions: bool = True,
) -> StudyStatistics:
    """Streams over chunks of runs and returns the study's sufficient statistics.

    Args:
      labels: [n] integer labels.
      logits: optional [R, n, k] float logits (numpy, memmap or jax array).
      preds: optional [R, n] integer predictions; derived as argmax(logits) if omitted.
      num_classes: k; taken from logits, else inferred as 1 + max(labels, preds).
      chunk_runs: runs per chunk (rounded down to even; capped for large n·k logits).
      keep_predictions: keep the [R, n] predictions (R·n bytes for k ≤ 256) in the result;
        without them the report has no intervals for disagreement and calibration.

    Raises:
      EstimatorInputError: on malformed inputs (shape, dtype, range, non-finite logits).
    """
    labels = check_labels(labels)
    num_examples = labels.shape[0]
    if logits is None and preds is None:
        raise EstimatorInputError("need logits or preds (or both)")
    logits, preds = _as_host(logits), _as_host(preds)
    num_runs = None
    if logits is not None:
        num_runs, _, logit_classes = check_logits(logits, num_examples)
        if num_classes is not None and int(num_classes) != logit_classes:
            raise EstimatorInputError(f"num_classes={num_classes} but logits have {logit_classes} classes")
        num_classes = logit_classes
    if preds is not None:
        pred_runs, _ = check_predictions(preds, num_examples)
        if num_runs is not None and pred_runs != num_runs:
            raise EstimatorInputError(f"preds has {pred_runs} runs but logits has {num_runs}")
        num_runs = pred_runs
    if num_classes is None:
        num_classes = 1 + max(int(labels.max()), _max_prediction(preds, max(1, chunk_runs)))
    num_classes = check_num_classes(num_classes, labels)

    rows = chunk_size(chunk_runs, num_examples, num_classes, logits is not None)
    with_confusion = num_classes <= MAX_BINARY_CLASSES
    labels_dev = jnp.asarray(labels)

    correct = np.empty((num_runs, num_examples), np.bool_)
    run_correct = np.empty(num_runs, np.int64)
    run_correct_even = np.empty(num_runs, np.int64)
    example_correct = np.zeros(num_examples, np.int64)
    votes_by_half = np.zeros((2, num_examples, num_classes), np.int64)
    confusion = np.empty((num_runs, num_classes, num_classes), np.int32) if with_confusion else None
    predictions = np.empty((num_runs, num_examples), np.min_scalar_type(num_classes - 1)) if keep_predictions else None
    prefix = ensemble.PrefixEnsembles(labels, num_runs, num_classes, logits is not None)
    if logits is not None:
        cross_entropy = np.empty(num_runs, np.float64)
        logit_run_correct = np.empty(num_runs, np.int64)
        pair_correct = np.empty(num_runs // 2, np.int64)
        z_sum = np.zeros(num_examples * num_classes, np.float64)
        z_norm_sq = 0.0

    for start in range(0, num_runs, rows):
        stop = min(start + rows, num_runs)
        size = stop - start
        logit_out = None
        if logits is not None:
            logit_chunk = _padded_rows(logits, start, stop, rows, _logit_dtype(logits))
            logit_out = jax.device_get(_logit_chunk(logit_chunk, labels_dev, size))
            if not logit_out["finite"]:
                raise EstimatorInputError(f"logits contain NaN or inf (in runs {start}..{stop - 1})")
            cross_entropy[start:stop] = logit_out["run_cross_entropy"][:size]
            logit_run_correct[start:stop] = logit_out["run_correct"][:size]
            pairs = slice(start // 2, stop // 2)
            pair_correct[pairs] = logit_out["pair_correct"][: pairs.stop - pairs.start]
            z_sum += logit_out["z_sum"]
            z_norm_sq += float(logit_out["z_norm_sq"])
        if preds is not None:
            pred_chunk = _padded_rows(preds, start, stop, rows, np.int32)
        else:
            pred_chunk = logit_out["preds"]
        out = jax.device_get(
            _prediction_chunk(pred_chunk, labels_dev, size, num_classes=num_classes, with_confusion=with_confusion)
        )
        if out["min"] < 0 or out["max"] >= num_classes:
            bad = int(out["min"]) if out["min"] < 0 else int(out["max"])
            raise EstimatorInputError(
                f"preds out of range: found class {bad} with num_classes={num_classes} (in runs {start}..{stop - 1})"
            )
        correct[start:stop] = out["correct"][:size]
        if predictions is not None:
            predictions[start:stop] = np.asarray(pred_chunk)[:size]
        run_correct[start:stop] = out["run_correct"][:size]
        run_correct_even[start:stop] = out["run_correct_even"][:size]
        example_correct += out["example_correct"]
        votes_by_half += out["votes"]
        if with_confusion:
            confusion[start:stop] = out["confusion"][:size]
        prefix.update(
            start,
            stop,
            out["votes"].sum(axis=0),
            None if logit_out is None else logit_out["logit_sum"].astype(np.float64),
            chunk_preds=lambda: np.asarray(pred_chunk)[:size],
            chunk_logits=None
            if logits is None
            else (lambda lead, s=start: np.asarray(logits[s : s + lead], np.float64).sum(axis=0)),
        )

    logit_stats = None
    if logits is not None:
        logit_stats = LogitStatistics(
            run_cross_entropy=cross_entropy,
            run_correct=logit_run_correct,
            pair_ensemble_correct=pair_correct,
            logit_z_sum=z_sum,
            logit_z_norm_sq=z_norm_sq,
        )
    return StudyStatistics(
        num_runs=num_runs,
        num_examples=num_examples,
        num_classes=num_classes,
        labels=labels,
        correct=correct,
        run_correct=run_correct,
        run_correct_even=run_correct_even,
        example_correct=example_correct,
        votes_by_half=votes_by_half,
        confusion=confusion,
        ensemble_curve=prefix.curve,
        logits=logit_stats,
        predictions=predictions,
    )


def _logit_dtype(logits: Any) -> np.dtype:
    # Half-precision inputs are shipped as they are (half the bytes); the kernel upcasts.
    dtype = np.dtype(logits.dtype)
    return dtype if dtype.name in ("float16", "float32") else np.dtype(np.float32)
