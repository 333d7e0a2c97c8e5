"""Per-channel normalisation constants, in 0..255 pixel units.

CIFAR-10 uses the published constants of the paper's ResNet-9 pipeline (ffcv-cifar). They are
kept as published rather than recomputed: their std (≈51) is not the pixel std of the
training set (≈63), and replications need the same input scale. Every other dataset gets the
exact pixel mean and population std (ddof=0) of its own training set.
"""

import numpy as np

CIFAR10_MEAN = np.array([125.307, 122.961, 113.8575], np.float32)
CIFAR10_STD = np.array([51.5865, 50.847, 51.255], np.float32)

_CHUNK = 4096  # images per chunk: bounds the int64 temporaries to ~100 MB for CIFAR-sized images


def channel_mean_std(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel mean and std per channel of uint8 `images` [N, H, W, C], as float32 [C].

    Sums and sums of squares are exact in int64 (N·H·W·255² stays far below 2**63 for any
    dataset that fits in memory), so the result does not depend on summation order. A
    constant channel would divide by zero when normalising, so its std is reported as 1.
    """
    channels = images.shape[-1]
    total = np.zeros(channels, np.int64)
    total_sq = np.zeros(channels, np.int64)
    for start in range(0, len(images), _CHUNK):
        chunk = images[start : start + _CHUNK].reshape(-1, channels).astype(np.int64)
        total += chunk.sum(axis=0)
        total_sq += (chunk * chunk).sum(axis=0)
    count = images.size // channels
    mean = total.astype(np.float64) / count
    # Exact integer numerator: count·Σx² − (Σx)² ≥ 0; Python ints avoid int64 overflow.
    var = np.array([(count * int(sq) - int(s) ** 2) / count**2 for s, sq in zip(total, total_sq)])
    std = np.sqrt(var)
    std[std == 0] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)
