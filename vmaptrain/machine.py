"""What this process runs on: the CPU model benchmarks print and record, and the CPU feature flags
(which decide what XLA:CPU's compiled code may use, so they can key a compilation cache).

Pure Python, importing nothing heavy: a benchmark or a PyTorch worker process can use it without
importing jax.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess

_CPUINFO = "/proc/cpuinfo"


def _lscpu_model() -> str:
    """lscpu's "Model name" ("" without lscpu); distinct names joined for mixed-core CPUs."""
    try:
        out = subprocess.run(
            ["lscpu"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            env={**os.environ, "LC_ALL": "C"},  # untranslated field names
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    if out.returncode != 0:
        return ""
    names = []
    for line in out.stdout.splitlines():
        key, sep, value = line.partition(":")
        value = " ".join(value.split())
        if sep and key.strip() == "Model name" and value not in ("", "-") and value not in names:
            names.append(value)
    return " / ".join(names)


def _cpuinfo_field(*keys: str) -> str:
    """The value of the first /proc/cpuinfo line whose field is one of `keys` ("" if none)."""
    try:
        with open(_CPUINFO, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, sep, value = line.partition(":")
                if sep and key.strip() in keys:
                    return value.strip()
    except OSError:
        pass
    return ""


@functools.cache
def cpu_model() -> str:
    """The CPU's model name: lscpu's "Model name", else /proc/cpuinfo's "model name", else
    platform.processor() (else the architecture, so the answer is never empty)."""
    model = _lscpu_model() or " ".join(_cpuinfo_field("model name").split()) or platform.processor().strip()
    return model or platform.machine() or "unknown"


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo ("flags" on x86, "Features" on ARM); empty where
    there is no /proc/cpuinfo (non-Linux)."""
    return frozenset(_cpuinfo_field("flags", "Features").split())
