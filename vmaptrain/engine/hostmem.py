"""Keep freed host memory in the process, so XLA:CPU's per-call scratch buffers are not
page-faulted in again on every training step.

With glibc's defaults a buffer above the mmap threshold (≤ 32 MiB) is mmapped on allocation
and unmapped on free, and per-thread arenas are trimmed: every jitted step of the reference net
(batch 256) then takes ~25 000 minor page faults per run, and the kernel spends ~40 % of the
step's CPU time zeroing pages (measured: sys 36-48 ms of a ~100 ms model-step, for a Python
loop of single-run steps and for multi-run programs alike; 0 after this change). Served from one
untrimmed heap instead, the same buffers are reused from step to step. The cost is that the
process keeps its peak host memory instead of returning it to the OS.

"Untrimmed" must mean never: a finite trim threshold (it was 2 GiB, mallopt's largest positive
value) is crossed once several programs share the heap (auto's candidates, the benchmark's
variants, train and eval), and each trim costs the next step ~100 000 page faults (~1 s of
kernel time at S = 8); glibc reads -1 as "never trim".

It must be in place before JAX starts its CPU backend: XLA's worker threads attach their own
malloc arenas when they first allocate, and a thread keeps its arena, so a policy applied later
leaves them mmapping and unmapping heaps (measured: 162,000 page faults and 709 ms per 8-run
reference-net step applied late, 0 and 385 ms applied first). Nothing happens at import:
`prepare_process()` applies it, explicitly, at the start of the entry points that will build CPU
programs (`SeedStudy.run`, the binaries, the benchmarks, the test session), and `state()` is what
a study records in config.json's "environment". It is applied only when the process's JAX will run
on the CPU (JAX_PLATFORMS says so, or no accelerator plugin is installed): accelerators' scratch
buffers are not host memory. Set VMAPTRAIN_MALLOC=default to leave the C allocator alone. A no-op
outside glibc.
"""

from __future__ import annotations

import ctypes
import os

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -2, -4, -8
_applied = None


def keep_freed_memory() -> bool:
    """Configure glibc malloc (one arena, no mmap, no trimming); True if it took effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("VMAPTRAIN_MALLOC", "") == "default":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1), (_M_TOP_PAD, 64 << 20))
    _applied = all(mallopt(option, value) == 1 for option, value in settings)
    return _applied


def cpu_backend_expected() -> bool:
    """Whether this process's JAX will run on the CPU, decided without starting a backend."""
    import importlib.metadata
    import importlib.util

    import jax

    platforms = jax.config.jax_platforms or os.environ.get("JAX_PLATFORMS", "")
    if platforms:
        return platforms.split(",")[0].strip() == "cpu"
    plugins = list(importlib.metadata.entry_points(group="jax_plugins"))
    return not plugins and importlib.util.find_spec("jax_plugins") is None


def prepare_process() -> dict:
    """Apply the host-memory policy if this process will run CPU programs; call it before the
    first JAX computation. Idempotent; returns `state()`."""
    if _applied is None and cpu_backend_expected():
        keep_freed_memory()
    return state()


def state() -> dict:
    """What the process runs with, for config.json."""
    if os.environ.get("VMAPTRAIN_MALLOC", "") == "default":
        return {"host_malloc": "default (VMAPTRAIN_MALLOC=default)"}
    if _applied:
        return {"host_malloc": "kept (glibc mallopt: one arena, no mmap, no trim)"}
    return {"host_malloc": "default"}
