"""Datasets as uint8 arrays in host memory, plus their normalisation constants.

Synopsis:

    data = load_dataset("digits")              # or cifar10, idx:DIR, cifar:DIR, npz:FILE, folder:DIR, …
    data.x_train.shape, data.x_train.dtype     # (1433, 8, 8, 1) uint8
    x = normalize(batch_uint8, data.mean, data.std)   # on device, after augmentation

This package knows nothing of seeds, models or devices: shuffling, augmentation and
placement happen elsewhere.
"""

from vmaptrain.data.dataset import Dataset
from vmaptrain.data.errors import DataError
from vmaptrain.data.normalize import normalize
from vmaptrain.data.sources import SPEC_FORMS, load_dataset
from vmaptrain.data.stats import CIFAR10_MEAN, CIFAR10_STD

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "DataError", "Dataset", "SPEC_FORMS", "load_dataset", "normalize"]
