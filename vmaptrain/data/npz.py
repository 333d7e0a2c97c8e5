"""A NumPy .npz archive with x_train, y_train, x_test, y_test (and optionally class_names).

Read with allow_pickle=False always: an object array in an .npz is a pickle, and loading it
could run code. Images may be [N, H, W] or [N, H, W, C], integer or float, as long as every
value is a whole number in 0..255; labels must be integers. `class_names`, if present, is a
1-D string array whose length fixes the number of classes.
"""

import os
import zipfile

import numpy as np

from vmaptrain.data.dataset import Dataset, build_dataset
from vmaptrain.data.errors import DataError

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _open_archive(path: str) -> np.lib.npyio.NpzFile:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        # Neither a zip nor an .npy header: numpy would only try unpickling, which is refused.
        raise DataError(f"{path} is not a readable .npz archive: {err}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path} is a single .npy array, expected an .npz archive with {', '.join(REQUIRED_KEYS)}")
    return archive


def _read_arrays(path: str) -> dict[str, np.ndarray]:
    with _open_archive(path) as archive:
        missing = [k for k in REQUIRED_KEYS if k not in archive.files]
        if missing:
            raise DataError(f"{path} lacks {', '.join(missing)} (has {', '.join(archive.files) or 'nothing'})")
        arrays = {}
        for key in (*REQUIRED_KEYS, "class_names"):
            if key not in archive.files:
                continue
            try:
                arrays[key] = archive[key]
            except ValueError as err:
                if "allow_pickle" in str(err):
                    raise DataError(f"{path}: '{key}' is an object array (a pickle); refusing to load it") from None
                raise DataError(f"{path}: '{key}' is not a readable array: {err}") from None
            except (OSError, EOFError, zipfile.BadZipFile) as err:
                raise DataError(f"{path}: '{key}' is not a readable array: {err}") from None
        return arrays


def load_npz_dataset(name: str, path: str) -> Dataset:
    if not os.path.isfile(path):
        raise DataError(f"npz file {path} does not exist")
    arrays = _read_arrays(path)
    class_names = arrays.get("class_names")
    if class_names is not None:
        if class_names.ndim != 1 or class_names.dtype.kind not in "US":
            raise DataError(
                f"{path}: class_names must be a 1-D string array, got {class_names.dtype} {class_names.shape}"
            )
        class_names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in class_names.tolist()]
    return build_dataset(
        name, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], class_names=class_names
    )
