"""Unpickling that cannot run code: only the globals real CIFAR batches need are admitted.

A pickle is a program: its GLOBAL opcodes name any importable callable and REDUCE calls it,
so `pickle.load` on a downloaded file can run `os.system`. `find_class` is where every
GLOBAL is resolved, before anything is called, so refusing there stops a hostile file before
it has any effect. The allow-list covers exactly what the CIFAR python batches contain:

* Python 2 pickles (the official files): dicts, lists, ints and byte strings (no globals),
  plus numpy arrays → `numpy.core.multiarray._reconstruct`, `numpy.ndarray`, `numpy.dtype`.
* The same data re-pickled by Python 3 with protocol 2: `numpy._core.multiarray._reconstruct`
  (numpy ≥ 2), and bytes objects, which protocol 2 spells `_codecs.encode(text, 'latin1')`
  or `__builtin__.bytes()` for b''.

Each admitted name resolves to a narrowed stand-in, never to the general callable: the
`ndarray` class is only accepted as `_reconstruct`'s first argument, `dtype` only builds plain
numeric dtypes (no object arrays, which could hold arbitrary Python objects), and `encode`
only does latin-1.
"""

import importlib
import io
import pickle

import numpy as np

from vmaptrain.data.errors import DataError


class _NdarrayClass:
    """Stands for `numpy.ndarray` inside a pickle; not callable, so REDUCE on it fails."""


_NDARRAY = _NdarrayClass()


def _numpy_reconstruct():
    """numpy's array-reconstruction helper, wherever this numpy version keeps it."""
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(module)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise DataError("this numpy has no multiarray._reconstruct; cannot read pickled arrays")


def _reconstruct(subtype, shape, dtype):
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError("_reconstruct may only build numpy.ndarray")
    return _numpy_reconstruct()(np.ndarray, shape, _plain_dtype(dtype))


def _plain_dtype(spec, align=False, copy=False):
    dtype = np.dtype(spec, align, copy) if not isinstance(spec, np.dtype) else spec
    if dtype.hasobject or dtype.names is not None or dtype.subdtype is not None or dtype.kind not in "biuf":
        raise pickle.UnpicklingError(f"dtype {dtype} is not allowed (only plain numeric dtypes)")
    return dtype


def _latin1_encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is only allowed as protocol 2's latin-1 bytes encoding")
    return text.encode("latin1")


def _empty_bytes(*args):
    if args:
        raise pickle.UnpicklingError("bytes() is only allowed without arguments")
    return b""


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _plain_dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
}


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a global outside the allow-list."""


class CifarUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose globals come only from `_ALLOWED`."""

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"global '{module}.{name}' is not allowed") from None


def load_pickle(path: str):
    """The object pickled in `path`, decoded the way Python 2 CIFAR pickles need (bytes keys)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err}") from None
    try:
        return CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except RefusedGlobal as err:
        raise DataError(f"refusing to unpickle {path}: {err}") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
        OverflowError,
    ) as err:
        raise DataError(f"{path} is not a readable CIFAR pickle: {type(err).__name__}: {err}") from None
