"""scikit-learn's copy of the UCI optical digits: 1,797 grayscale 8×8 images, 10 classes.

Pixels: the original values are 0..16 (counts of set pixels in 4×4 blocks); they are mapped
to uint8 by v → (255·v + 8) // 16, i.e. v·255/16 rounded half up, so 0 → 0 and 16 → 255.

Split: fixed, stratified and free of randomness. Within each class, examples keep their
order in `load_digits`; every 5th one, starting with the first (positions 0, 5, 10, … within
the class), goes to the test set and the rest to train. That gives 1,433 train / 364 test
images (20.3% test) with every class in proportion (35–37 test images per class), and the same split on every machine
and library version that ships the same data. Both splits keep the original relative order.
"""

import numpy as np

from vmaptrain.data.dataset import Dataset, build_dataset
from vmaptrain.data.errors import DataError

TEST_EVERY = 5  # examples 0, 5, 10, … of each class are test examples


def digits_split(labels: np.ndarray) -> np.ndarray:
    """Boolean mask over examples: True where the example belongs to the test split."""
    is_test = np.zeros(len(labels), bool)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        is_test[members[::TEST_EVERY]] = True
    return is_test


def load_digits_dataset(name: str) -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise DataError(f"the digits dataset needs scikit-learn (pip install scikit-learn): {err}") from None
    bunch = load_digits()
    values = bunch.images.astype(np.int64)  # float64 holding whole numbers 0..16
    pixels = ((255 * values + 8) // 16).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int32)
    is_test = digits_split(labels)
    return build_dataset(
        name,
        pixels[~is_test],
        labels[~is_test],
        pixels[is_test],
        labels[is_test],
        num_classes=10,
        class_names=[str(d) for d in range(10)],
    )
