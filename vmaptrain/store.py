"""Atomic file writes: a reader never sees a half-written output."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np


def _atomic(path: str, write) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str, obj) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=True) + "\n"
    _atomic(path, lambda handle: handle.write(text.encode()))


def write_report(path: str, obj) -> None:
    """A benchmark's JSON report at `path`, its folder created if missing."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_json(path, obj)


def read_json(path: str):
    with open(path) as handle:
        return json.load(handle)


def write_npy(path: str, array: np.ndarray) -> None:
    _atomic(path, lambda handle: np.save(handle, array, allow_pickle=False))


def write_npz(path: str, **arrays: np.ndarray) -> None:
    _atomic(path, lambda handle: np.savez(handle, **arrays))


def write_npz_compressed(path: str, **arrays: np.ndarray) -> None:
    _atomic(path, lambda handle: np.savez_compressed(handle, **arrays))


def write_bytes(path: str, data: bytes) -> None:
    _atomic(path, lambda handle: handle.write(data))
