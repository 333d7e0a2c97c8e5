"""Spec string → source loader.

    digits                         scikit-learn's 8×8 digits (fixed split, see digits.py)
    cifar10, cifar100, mnist,
    fashion_mnist, svhn_cropped    TensorFlow Datasets (needs tensorflow + tensorflow-datasets)
    tfds:NAME                      any other tfds image-classification dataset with train/test
    idx:DIR                        MNIST-style IDX files
    cifar:DIR                      CIFAR-10/100 python pickles (restricted unpickler)
    npz:FILE                       .npz with x_train, y_train, x_test, y_test
    folder:DIR                     DIR/{train,test}/<class>/*.png|jpg

`data_dir` and `manual_dir` are tfds' data and manual-download folders; local sources read
their path as given (with ~ expanded) and ignore both. Nothing is cached anywhere by
vmaptrain itself; tfds writes its prepared files under `data_dir` (when None, under tfds'
own default, $TFDS_DATA_DIR or ~/tensorflow_datasets).
"""

import os

from vmaptrain.data.cifar import load_cifar_dataset
from vmaptrain.data.dataset import Dataset
from vmaptrain.data.digits import load_digits_dataset
from vmaptrain.data.errors import DataError
from vmaptrain.data.folder import load_folder_dataset
from vmaptrain.data.idx import load_idx_dataset
from vmaptrain.data.npz import load_npz_dataset
from vmaptrain.data.tfds_source import KNOWN_TFDS_NAMES, load_tfds_dataset

PATH_SOURCES = {
    "idx": load_idx_dataset,
    "cifar": load_cifar_dataset,
    "npz": load_npz_dataset,
    "folder": load_folder_dataset,
}
SPEC_FORMS = ("digits", *KNOWN_TFDS_NAMES, "tfds:NAME", "idx:DIR", "cifar:DIR", "npz:FILE", "folder:DIR")


def _dispatch(spec: str, data_dir: str | None, manual_dir: str | None) -> Dataset:
    if spec == "digits":
        return load_digits_dataset(spec)
    if spec in KNOWN_TFDS_NAMES:
        return load_tfds_dataset(spec, spec, data_dir, manual_dir)
    prefix, sep, rest = spec.partition(":")
    if sep and prefix == "tfds":
        if not rest.strip():
            raise DataError("tfds: needs a dataset name, e.g. tfds:kmnist")
        return load_tfds_dataset(spec, rest.strip(), data_dir, manual_dir)
    if sep and prefix in PATH_SOURCES:
        if not rest.strip():
            raise DataError(f"{prefix}: needs a path, e.g. {prefix}:/data/mine")
        return PATH_SOURCES[prefix](spec, os.path.expanduser(rest))
    raise DataError(f"unknown source; expected one of {', '.join(SPEC_FORMS)}")


def load_dataset(spec: str, *, data_dir: str | None = None, manual_dir: str | None = None) -> Dataset:
    """Load the dataset named by `spec` (see the module docstring) into host memory.

    Returns a `Dataset` with uint8 [N, H, W, C] images, int32 labels and per-channel
    normalisation constants. Every problem a user can fix raises `DataError` whose message
    starts with "dataset '<spec>': ".
    """
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"dataset {spec!r}: empty or non-string spec; expected one of {', '.join(SPEC_FORMS)}")
    try:
        return _dispatch(spec, data_dir, manual_dir)
    except DataError as err:
        raise DataError(f"dataset '{spec}': {err}") from None
    except OSError as err:  # permissions, a file where a folder was expected, …
        raise DataError(f"dataset '{spec}': cannot read {err.filename or 'its files'}: {err.strerror or err}") from None
