"""File-level driver: memory-mapped .npy inputs → DIR/report.json and figures.

Logits are opened with `np.load(mmap_mode='r', allow_pickle=False)` and streamed in chunks
of runs, so a 12 GB fp16 [61565, 10000, 10] array is analysed without loading it. Outputs
are written into a temporary sibling directory and moved into place only after everything
succeeded, so a failure leaves nothing partial in the output directory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np

from vmaptrain.estimators.errors import EstimatorInputError
from vmaptrain.estimators.plots import write_figures
from vmaptrain.estimators.report import DEFAULT_BOOTSTRAP, DEFAULT_CHUNK_RUNS, analyze

REPORT_NAME = "report.json"


def load_array(path: str, what: str) -> np.ndarray:
    """Memory-maps one .npy file; any failure becomes an EstimatorInputError naming the file."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise EstimatorInputError(f"cannot read {what} file {path!r}: {error}") from None
    if not isinstance(array, np.ndarray):
        raise EstimatorInputError(f"{what} file {path!r} is not a single .npy array")
    return array


def analyze_files(
    labels_path: str,
    out_dir: str,
    *,
    logits_path: str | None = None,
    preds_path: str | None = None,
    num_classes: int | None = None,
    pair_threshold: float = 0.02,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    chunk_runs: int = DEFAULT_CHUNK_RUNS,
) -> dict:
    """Analyses a study stored as .npy files and writes report.json plus figures to out_dir.

    Args:
      labels_path: [n] integer labels.
      out_dir: output directory (created if missing; existing files of the same name are
        replaced).
      logits_path: optional [R, n, k] float16/float32 logits.
      preds_path: optional [R, n] integer predictions (argmax of the logits if omitted).
      Remaining arguments as in `vmaptrain.estimators.report`.

    Returns:
      The report dict that was written.

    Raises:
      EstimatorInputError: unreadable files or malformed arrays (nothing is written).
    """
    if logits_path is None and preds_path is None:
        raise EstimatorInputError("need a logits file or a preds file")
    labels = np.asarray(load_array(labels_path, "labels"))
    logits = None if logits_path is None else load_array(logits_path, "logits")
    preds = None if preds_path is None else load_array(preds_path, "preds")
    analysis = analyze(
        labels,
        logits=logits,
        preds=preds,
        num_classes=num_classes,
        pair_threshold=pair_threshold,
        bootstrap=bootstrap,
        seed=seed,
        chunk_runs=chunk_runs,
    )

    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".analyze-", dir=parent)
    try:
        with open(os.path.join(staging, REPORT_NAME), "w") as f:
            json.dump(analysis.report, f, indent=1, allow_nan=False)
        names = [REPORT_NAME] + write_figures(analysis, staging)
        os.makedirs(out_dir, exist_ok=True)
        for name in names:
            os.replace(os.path.join(staging, name), os.path.join(out_dir, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return analysis.report
