"""CIFAR-10 / CIFAR-100 "python version" batches, read through the restricted unpickler.

CIFAR-10: data_batch_1 … data_batch_5 + test_batch (+ batches.meta for class names).
CIFAR-100: train + test (+ meta), labelled with the 100 fine labels.
Each batch is a dict (bytes keys) with b'data': uint8 [N, 3072] holding each image as
3 planes (R, G, B) of 32×32 row-major pixels, and b'labels' (CIFAR-10) or b'fine_labels'
(CIFAR-100). The files may sit in DIR itself or in DIR/cifar-10-batches-py or
DIR/cifar-100-python, as the official archives unpack.
"""

import os

import numpy as np

from vmaptrain.data import stats
from vmaptrain.data.dataset import Dataset, build_dataset
from vmaptrain.data.errors import DataError
from vmaptrain.data.safe_pickle import load_pickle

CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"
CIFAR100_TRAIN, CIFAR100_TEST = "train", "test"
_SUBDIRS = ("", "cifar-10-batches-py", "cifar-100-python")
_IMAGE_BYTES = 3 * 32 * 32


def _with_str_keys(batch, path: str) -> dict:
    if not isinstance(batch, dict):
        raise DataError(f"{path} holds a {type(batch).__name__}, expected a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}


def read_batch(path: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 32, 32, 3] and labels [N] of one batch file."""
    batch = _with_str_keys(load_pickle(path), path)
    for key in ("data", label_key):
        if key not in batch:
            raise DataError(f"{path} has no '{key}' entry (keys: {sorted(map(str, batch))})")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _IMAGE_BYTES:
        shape = getattr(data, "shape", None)
        raise DataError(f"{path}: 'data' must be uint8 [N, {_IMAGE_BYTES}], got {type(data).__name__} {shape}")
    try:
        labels = np.asarray(batch[label_key])
    except (TypeError, ValueError) as err:
        raise DataError(f"{path}: '{label_key}' is not a list of integers: {err}") from None
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{path}: '{label_key}' must be a flat list of integers")
    if len(labels) != len(data):
        raise DataError(f"{path} has {len(data)} images but {len(labels)} labels")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # planes → HWC
    return np.ascontiguousarray(images), labels


def _class_names(path: str, key: str):
    if not os.path.isfile(path):
        return None
    meta = _with_str_keys(load_pickle(path), path)
    names = meta.get(key)
    if not isinstance(names, list) or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{path}: '{key}' must be a list of names")
    return [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]


def _concat(batches):
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def find_cifar_root(directory: str) -> tuple[str, str]:
    """(folder holding the batches, 'cifar10' | 'cifar100')."""
    for sub in _SUBDIRS:
        root = os.path.join(directory, sub)
        if os.path.isfile(os.path.join(root, CIFAR10_TEST)) or os.path.isfile(os.path.join(root, CIFAR10_TRAIN[0])):
            return root, "cifar10"
        if os.path.isfile(os.path.join(root, CIFAR100_TRAIN)):
            return root, "cifar100"
    raise DataError(
        f"no CIFAR python batches in {directory} (expected data_batch_1..5 + test_batch, "
        f"or train + test, possibly inside cifar-10-batches-py/ or cifar-100-python/)"
    )


def load_cifar_dataset(name: str, directory: str) -> Dataset:
    if not os.path.isdir(directory):
        raise DataError(f"CIFAR directory {directory} does not exist")
    root, kind = find_cifar_root(directory)
    if kind == "cifar10":
        train_files, test_file, label_key = CIFAR10_TRAIN, CIFAR10_TEST, "labels"
        meta_file, names_key, num_classes = "batches.meta", "label_names", 10
    else:
        train_files, test_file, label_key = (CIFAR100_TRAIN,), CIFAR100_TEST, "fine_labels"
        meta_file, names_key, num_classes = "meta", "fine_label_names", 100
    missing = [f for f in (*train_files, test_file) if not os.path.isfile(os.path.join(root, f))]
    if missing:
        raise DataError(f"{root} looks like {kind} but lacks {', '.join(missing)}")
    x_train, y_train = _concat([read_batch(os.path.join(root, f), label_key) for f in train_files])
    x_test, y_test = read_batch(os.path.join(root, test_file), label_key)
    class_names = _class_names(os.path.join(root, meta_file), names_key)
    constants = dict(mean=stats.CIFAR10_MEAN, std=stats.CIFAR10_STD) if kind == "cifar10" else {}
    return build_dataset(
        name, x_train, y_train, x_test, y_test, num_classes=num_classes, class_names=class_names, **constants
    )
