"""Ensemble accuracy of the first m runs, m = 1, 2, 4, ..., R (docs/statistics.md §9).

Two ensembles: the plurality vote over predicted classes and the argmax of the summed
logits (same argmax as the mean). Ties go to the lowest class index (`np.argmax`).

The curve is built while streaming over runs in order: `PrefixEnsembles` keeps the
running vote counts and logit sums and records the ensemble accuracy each time the
number of runs seen reaches a checkpoint. A checkpoint that falls inside a chunk is
completed from that chunk's leading rows on the host.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def ensemble_sizes(num_runs: int) -> list[int]:
    """Powers of two up to num_runs, plus num_runs itself."""
    sizes = []
    m = 1
    while m < num_runs:
        sizes.append(m)
        m *= 2
    sizes.append(num_runs)
    return sizes


def vote_accuracy(votes: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the plurality vote given vote counts [n, k]."""
    return float(np.mean(np.argmax(votes, axis=1) == labels))


def logit_accuracy(logit_sum: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the logit-averaged ensemble given summed logits [n, k]."""
    return float(np.mean(np.argmax(logit_sum, axis=1) == labels))


def _vote_counts(preds: np.ndarray, num_classes: int) -> np.ndarray:
    num_examples = preds.shape[1]
    flat = (np.arange(num_examples) * num_classes + preds).ravel()
    return np.bincount(flat, minlength=num_examples * num_classes).reshape(num_examples, num_classes)


class PrefixEnsembles:
    """Streaming accumulator for the ensemble-accuracy curve."""

    def __init__(self, labels: np.ndarray, num_runs: int, num_classes: int, with_logits: bool):
        self._labels = labels
        self._num_classes = num_classes
        self._pending = ensemble_sizes(num_runs)
        self._votes = np.zeros((labels.shape[0], num_classes), np.int64)
        self._logit_sum = np.zeros((labels.shape[0], num_classes), np.float64) if with_logits else None
        self.curve: list[dict] = []

    def update(
        self,
        start: int,
        stop: int,
        chunk_votes: np.ndarray,
        chunk_logit_sum: np.ndarray | None,
        chunk_preds: Callable[[], np.ndarray],
        chunk_logits: Callable[[int], np.ndarray] | None,
    ) -> None:
        """Adds runs [start, stop).

        Args:
          start, stop: run range of this chunk.
          chunk_votes: vote counts [n, k] of the chunk's runs.
          chunk_logit_sum: summed logits [n, k] of the chunk's runs, or None.
          chunk_preds: returns the chunk's predictions [stop-start, n] (called only when a
            checkpoint falls strictly inside the chunk).
          chunk_logits: given j, returns the sum over the chunk's first j runs of the logits
            [n, k] (same condition).
        """
        while self._pending and start < self._pending[0] < stop:
            lead = self._pending.pop(0) - start
            votes = self._votes + _vote_counts(chunk_preds()[:lead], self._num_classes)
            logit_sum = None if self._logit_sum is None else self._logit_sum + chunk_logits(lead)
            self._record(start + lead, votes, logit_sum)
        self._votes += chunk_votes
        if self._logit_sum is not None:
            self._logit_sum += chunk_logit_sum
        if self._pending and self._pending[0] == stop:
            self._pending.pop(0)
            self._record(stop, self._votes, self._logit_sum)

    def _record(self, size: int, votes: np.ndarray, logit_sum: np.ndarray | None) -> None:
        self.curve.append(
            {
                "m": int(size),
                "vote": vote_accuracy(votes, self._labels),
                "logit": None if logit_sum is None else logit_accuracy(logit_sum, self._labels),
            }
        )

    @property
    def votes(self) -> np.ndarray:
        """Vote counts [n, k] of all runs added so far."""
        return self._votes
