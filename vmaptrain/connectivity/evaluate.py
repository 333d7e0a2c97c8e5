"""Loss, accuracy and preactivation statistics of many networks [pairs, α] on a dataset."""

from __future__ import annotations

import numpy as np

from vmaptrain.connectivity.passes import Pooled, eval_fn


def evaluate(model, nets, batches, *, stat_sites=(), correct=None) -> dict:
    """{'loss', 'acc': [P, A]; 'stats': {site: (mean, var) [P, A, C]}} over all `batches`."""
    fn = eval_fn(model, tuple(stat_sites), correct is not None)
    loss = right = 0.0
    count = 0
    pooled = Pooled()
    for x, y in batches:
        batch_loss, batch_right, stats = fn((nets, correct), x, y)
        loss = loss + np.asarray(batch_loss, np.float64)
        right = right + np.asarray(batch_right, np.float64)
        count += len(y)
        if stat_sites:
            pooled.add(stats)
    return {"loss": loss / count, "acc": right / count, "stats": pooled.result() if stat_sites else {}}
