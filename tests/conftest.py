"""Shared fixtures: small digits studies whose compiled programs are reused across tests."""

from __future__ import annotations

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

# The test session runs CPU programs in-process, as a study or a binary does: the host allocator
# policy goes first, before any test starts JAX's CPU backend (vmaptrain/engine/hostmem.py).
from vmaptrain.engine import hostmem  # noqa: E402

hostmem.prepare_process()

# A configuration small enough to train in seconds on 2 cores, big enough to learn digits.
SMALL = dict(dataset="digits", model="small_cnn", width=0.5, epochs=2, batch_size=64, lr=0.05)


@pytest.fixture(scope="session")
def small_config():
    return dict(SMALL)


def snapshot(directory) -> dict:
    """Every file below `directory` → its bytes (to prove a failure destroyed nothing)."""
    found = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, directory)] = handle.read()
    return found
