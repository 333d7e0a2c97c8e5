"""MNIST-style IDX files (MNIST, Fashion-MNIST, KMNIST, …), gzipped or not.

IDX layout: two zero bytes, a type code (0x08 = unsigned byte, the only one image datasets
use), the number of dimensions, then each dimension as a big-endian uint32, then the raw
row-major payload. A file is accepted only when its header agrees with what it should hold
(3 dims for images, 1 for labels) and its payload is exactly the size the header promises.
"""

import gzip
import os
import zlib

import numpy as np

from vmaptrain.data.dataset import Dataset, build_dataset
from vmaptrain.data.errors import DataError

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_UBYTE = 0x08


def find_idx_file(directory: str, stem: str) -> str:
    """The path of `stem` or `stem.gz` in `directory` (the uncompressed file wins if both exist)."""
    for candidate in (stem, stem + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    raise DataError(f"missing IDX file {stem}[.gz] in {directory}")


def read_idx_bytes(path: str) -> bytes:
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read IDX file {path}: {err}") from None


def parse_idx(raw: bytes, path: str, ndim: int) -> np.ndarray:
    """The uint8 array of an IDX file's bytes, checked against its header."""
    if len(raw) < 4:
        raise DataError(f"IDX file {path} is truncated: {len(raw)} bytes, no header")
    zero_a, zero_b, type_code, file_ndim = raw[:4]
    if zero_a or zero_b:
        raise DataError(f"IDX file {path} has bad magic number {raw[:4].hex()} (expected {0x0800 + ndim:08x})")
    if type_code != _UBYTE:
        raise DataError(f"IDX file {path} holds type 0x{type_code:02x}; only unsigned bytes (0x08) are supported")
    if file_ndim != ndim:
        raise DataError(f"IDX file {path} has {file_ndim} dimensions, expected {ndim}")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"IDX file {path} is truncated inside its header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header_size + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(f"IDX file {path} is {problem}: {len(raw)} bytes, header {shape} needs {expected}")
    return np.frombuffer(raw, np.uint8, offset=header_size).reshape(shape)


def load_idx_split(directory: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    image_stem, label_stem = SPLIT_FILES[split]
    image_path = find_idx_file(directory, image_stem)
    label_path = find_idx_file(directory, label_stem)
    images = parse_idx(read_idx_bytes(image_path), image_path, ndim=3)
    labels = parse_idx(read_idx_bytes(label_path), label_path, ndim=1)
    if len(images) != len(labels):
        raise DataError(f"{label_path} has {len(labels)} labels but {image_path} has {len(images)} images")
    return images[..., None], labels


def load_idx_dataset(name: str, directory: str) -> Dataset:
    if not os.path.isdir(directory):
        raise DataError(f"IDX directory {directory} does not exist")
    x_train, y_train = load_idx_split(directory, "train")
    x_test, y_test = load_idx_split(directory, "test")
    return build_dataset(name, x_train, y_train, x_test, y_test)
