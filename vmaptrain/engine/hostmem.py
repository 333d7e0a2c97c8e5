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

Nothing happens at import: `prepare(devices)` applies it when programs for CPU devices are built
(`programs.Programs`), and a study records the outcome in config.json's "environment". Set
VMAPTRAIN_MALLOC=default to leave the C allocator alone. A no-op outside glibc and on
accelerators, whose scratch buffers are not host memory.
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


def prepare(devices) -> dict:
    """Apply the host-memory policy for programs on `devices`; what was done, for config.json."""
    if any(d.platform == "cpu" for d in devices):
        kept = keep_freed_memory()
        setting = "kept (glibc mallopt: one arena, no mmap, no trim)" if kept else "default"
        if os.environ.get("VMAPTRAIN_MALLOC", "") == "default":
            setting = "default (VMAPTRAIN_MALLOC=default)"
    else:
        setting = "default (no CPU programs)"
    return {"host_malloc": setting}


def applied() -> bool:
    """Whether this process's C allocator was changed."""
    return bool(_applied)
