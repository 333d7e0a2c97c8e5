"""The `Dataset` record and the checks every source's arrays pass before they become one."""

import dataclasses

import numpy as np

from vmaptrain.data import stats
from vmaptrain.data.errors import DataError


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A whole dataset in host memory: uint8 images in pixel space plus integer labels.

    Arrays are read-only so one loaded dataset can be shared without defensive copies.
    `mean`/`std` are per-channel, in 0..255 units, for `normalize`.
    """

    name: str  # the spec string as given to load_dataset
    x_train: np.ndarray  # uint8 [N, H, W, C]
    y_train: np.ndarray  # int32 [N]
    x_test: np.ndarray  # uint8 [M, H, W, C]
    y_test: np.ndarray  # int32 [M]
    num_classes: int
    mean: np.ndarray  # float32 [C]
    std: np.ndarray  # float32 [C]
    class_names: tuple[str, ...] | None = None


def as_uint8_images(array: np.ndarray, what: str) -> np.ndarray:
    """`array` [N, H, W] or [N, H, W, C] as uint8 [N, H, W, C], refusing anything lossy.

    Integer arrays must lie in 0..255; float arrays must hold exact integers in 0..255
    (floats scaled to [0, 1] are refused rather than guessed at).
    """
    array = np.asarray(array)
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4:
        raise DataError(f"{what}: expected images shaped [N, H, W] or [N, H, W, C], got shape {array.shape}")
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind not in "iuf":
        raise DataError(f"{what}: expected integer or float pixels, got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise DataError(f"{what}: pixel values must lie in 0..255, found {array.min()}..{array.max()}")
    if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
        raise DataError(f"{what}: float pixels must be whole numbers in 0..255 (scale [0, 1] data by 255 first)")
    return array.astype(np.uint8)


def as_labels(array: np.ndarray, what: str) -> np.ndarray:
    """`array` [N] of integer class indices as int32, refusing negatives and non-integers."""
    array = np.asarray(array)
    if array.ndim != 1:
        raise DataError(f"{what}: expected labels shaped [N], got shape {array.shape}")
    if array.size and array.dtype.kind not in "iu":
        raise DataError(f"{what}: expected integer labels, got dtype {array.dtype}")
    if array.size and array.min() < 0:
        raise DataError(f"{what}: labels must be non-negative, found {array.min()}")
    if array.size and array.max() > np.iinfo(np.int32).max:
        raise DataError(f"{what}: label {array.max()} does not fit in int32")
    return array.astype(np.int32)


def build_dataset(
    name: str,
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    num_classes: int | None = None,
    class_names=None,
    mean=None,
    std=None,
) -> Dataset:
    """Validate a source's arrays and assemble the `Dataset`.

    `num_classes` defaults to len(class_names), else to 1 + the largest label seen.
    `mean`/`std` default to the training set's own statistics (see `stats`).
    """
    x_train = as_uint8_images(x_train, "train images")
    x_test = as_uint8_images(x_test, "test images")
    y_train = as_labels(y_train, "train labels")
    y_test = as_labels(y_test, "test labels")
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) == 0:
            raise DataError(f"the {split} split is empty")
        if len(x) != len(y):
            raise DataError(f"the {split} split has {len(x)} images but {len(y)} labels")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"train images are {x_train.shape[1:]} but test images are {x_test.shape[1:]} (H, W, C)")
    if class_names is not None:
        class_names = tuple(str(n) for n in class_names)
        if num_classes is None:
            num_classes = len(class_names)
        if len(class_names) != num_classes:
            raise DataError(f"{len(class_names)} class names given for {num_classes} classes")
    if num_classes is None:
        num_classes = int(max(y_train.max(), y_test.max())) + 1
    for split, y in (("train", y_train), ("test", y_test)):
        if y.max() >= num_classes:
            raise DataError(f"{split} label {y.max()} is out of range for {num_classes} classes")
    if mean is None or std is None:
        mean, std = stats.channel_mean_std(x_train)
    mean = np.array(mean, np.float32)  # copies: published constants stay untouched
    std = np.array(std, np.float32)
    if mean.shape != (x_train.shape[-1],) or std.shape != mean.shape:
        raise DataError(f"normalisation constants {mean.shape}/{std.shape} do not match {x_train.shape[-1]} channels")
    arrays = [x_train, y_train, x_test, y_test, mean, std]
    for array in arrays:
        array.setflags(write=False)
    return Dataset(name, x_train, y_train, x_test, y_test, int(num_classes), mean, std, class_names)
