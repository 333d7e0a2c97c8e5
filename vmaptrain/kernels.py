"""Layers whose formulation matters for XLA:CPU speed.

`max_pool2` is reshape + max: ~1.6× faster than `reduce_window` in a training step, because its
gradient avoids the select-and-scatter kernel (cpu-measurements.md). A hand-written backward
(hit mask from `x == max`, g / count) was ~2.5× cheaper alone, but inside a model XLA:CPU could
round x differently in the fused max and comparison, some windows then matched no element
(count 0) and the gradient became infinite: the reference net diverged on 28×28 inputs under
"+direct". Autodiff's form is used everywhere (tests/test_strategies.py checks routed gradients).
"""

from __future__ import annotations


def max_pool2(x):
    """2×2 max pool, stride 2, floor semantics (odd trailing rows/columns are dropped)."""
    b, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    x = x[:, : 2 * h2, : 2 * w2, :]
    return x.reshape(b, h2, 2, w2, 2, c).max(axis=(2, 4))
