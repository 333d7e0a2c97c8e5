"""Input checks shared by every estimator entry point.

Checks that are O(1) or O(n) happen here, before any work. Checks that need a pass over
the O(R·n) data (prediction range, finite logits) happen chunk by chunk in `streaming`,
which raises the same error type, so a caller sees one kind of failure either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class EstimatorInputError(ValueError):
    """Raised when inputs to an estimator are malformed (shape, dtype, range, NaN)."""


# Integer dtypes accepted for labels and predictions; bool is rejected on purpose (a 0/1
# correctness matrix passed as predictions is a common mistake that would silently "work").
_INTEGER_KINDS = ("i", "u")
_FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64")


def _shape_of(array: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in np.shape(array))


def _dtype_of(array: Any) -> np.dtype:
    return np.dtype(getattr(array, "dtype", np.asarray(array).dtype))


def check_labels(labels: Any) -> np.ndarray:
    """Returns labels as a 1-D int32 numpy array, or raises EstimatorInputError."""
    dtype = _dtype_of(labels)
    if dtype.kind not in _INTEGER_KINDS:
        raise EstimatorInputError(f"labels must have an integer dtype, got {dtype}")
    shape = _shape_of(labels)
    if len(shape) != 1:
        raise EstimatorInputError(f"labels must be 1-D [n], got shape {shape}")
    if shape[0] < 2:
        raise EstimatorInputError(f"need at least 2 examples, got n={shape[0]}")
    labels = np.asarray(labels)
    if labels.min() < 0:
        raise EstimatorInputError(f"labels must be >= 0, found {int(labels.min())}")
    return labels.astype(np.int32)


def check_predictions(preds: Any, num_examples: int) -> tuple[int, int]:
    """Checks the dtype and shape of a [R, n] prediction matrix; returns (R, n)."""
    dtype = _dtype_of(preds)
    if dtype.kind not in _INTEGER_KINDS:
        raise EstimatorInputError(f"preds must have an integer dtype (class ids), got {dtype}")
    shape = _shape_of(preds)
    if len(shape) != 2:
        raise EstimatorInputError(f"preds must be 2-D [runs, examples], got shape {shape}")
    if shape[1] != num_examples:
        raise EstimatorInputError(f"preds has {shape[1]} examples per run but labels has {num_examples}")
    _check_num_runs(shape[0])
    return shape


def check_logits(logits: Any, num_examples: int) -> tuple[int, int, int]:
    """Checks the dtype and shape of a [R, n, k] logits array; returns (R, n, k)."""
    dtype = _dtype_of(logits)
    if dtype.name not in _FLOAT_NAMES:
        raise EstimatorInputError(f"logits must be float16/bfloat16/float32/float64, got {dtype}")
    shape = _shape_of(logits)
    if len(shape) != 3:
        raise EstimatorInputError(f"logits must be 3-D [runs, examples, classes], got shape {shape}")
    if shape[1] != num_examples:
        raise EstimatorInputError(f"logits has {shape[1]} examples per run but labels has {num_examples}")
    if shape[2] < 2:
        raise EstimatorInputError(f"logits need at least 2 classes, got k={shape[2]}")
    _check_num_runs(shape[0])
    return shape


def _check_num_runs(num_runs: int) -> None:
    if num_runs < 2:
        raise EstimatorInputError(f"need at least 2 runs to estimate variance across runs, got R={num_runs}")


def check_num_classes(num_classes: int, labels: np.ndarray) -> int:
    num_classes = int(num_classes)
    if num_classes < 2:
        raise EstimatorInputError(f"num_classes must be >= 2, got {num_classes}")
    if int(labels.max()) >= num_classes:
        raise EstimatorInputError(f"labels out of range: found {int(labels.max())} with num_classes={num_classes}")
    return num_classes
