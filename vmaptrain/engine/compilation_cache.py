"""JAX's persistent compilation cache: on by default, private to the user, split by machine.

A rerun of the same configuration (a resumed study, figures that share a spec, autotune's
candidates, the test suite) then loads its executables instead of compiling them again.

- Where: `$VMAPTRAIN_CACHE_DIR/xla/<machine>/` (default `~/.cache/vmaptrain/xla/<machine>/`), or
  the directory `VMAPTRAIN_COMPILATION_CACHE` names; `VMAPTRAIN_COMPILATION_CACHE=off` (or the
  binaries' `--nocompilation_cache`) turns it off.
- Private: a compilation cache is trusted code (whoever can write it can run code in this
  process), so the directories are created 0700 and a cache directory that another user owns
  or that others may write to is not used (a warning says so).
- Split by machine: XLA:CPU compiles for the host's CPU features, and JAX's own cache key does
  not name them (every CPU is device kind "cpu"), so the directory is keyed by the CPU model, its
  feature flags and the jax/jaxlib versions. An executable compiled for another CPU is never
  offered to this one.

Nothing happens at import: `prepare()` is called when programs are built (`programs.Programs`)
and returns what it did, for config.json's "environment". Executables loaded from the cache
compute bitwise what freshly compiled ones compute (tests/test_compilation_cache.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import stat

from vmaptrain import machine

log = logging.getLogger("vmaptrain.compilation_cache")

ENV = "VMAPTRAIN_COMPILATION_CACHE"
_OFF = ("off", "0", "false", "no", "none")
_state: dict = {}


def machine_key() -> str:
    """What an executable compiled here depends on beyond JAX's own cache key."""
    import jax
    import jaxlib

    fields = [
        machine.cpu_model(),
        platform.machine(),
        " ".join(sorted(machine.cpu_flags())),
        jax.__version__,
        jaxlib.__version__,
    ]
    return hashlib.sha256("\n".join(fields).encode()).hexdigest()[:16]


def directory() -> str | None:
    """The cache directory this process would use, or None when it is turned off."""
    setting = os.environ.get(ENV, "").strip()
    if setting.lower() in _OFF:
        return None
    if setting:
        return os.path.abspath(os.path.expanduser(setting))
    root = os.environ.get("VMAPTRAIN_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "vmaptrain")
    return os.path.join(os.path.abspath(root), "xla", machine_key())


def disable() -> None:
    """Turn the cache off for this process (before programs are built)."""
    os.environ[ENV] = "off"


def _private(path: str) -> str | None:
    """Create `path` (0700); the reason it cannot be trusted, or None."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.stat(path)
    except OSError as err:
        return f"cannot create it ({err.strerror or err})"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return "it belongs to another user"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "others may write to it"
    return None


def prepare() -> dict:
    """Point JAX's persistent cache at this machine's private directory (once per process);
    {"compilation_cache": directory or "off (reason)"}."""
    path = directory()
    if _state.get("path", "") == path and "record" in _state:
        return _state["record"]
    import jax

    if path is None:
        record = "off"
    else:
        problem = _private(path)
        if problem is not None:
            log.warning("compilation cache %s not used: %s", path, problem)
            record, path = f"off ({path}: {problem})", None
        else:
            record = path
    if path is not None:
        jax.config.update("jax_compilation_cache_dir", path)
        # Every program, however quick to compile: a study's evaluation and estimator programs
        # add up to seconds, and each entry is small.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    _state.update(path=path, record={"compilation_cache": record})
    return _state["record"]
