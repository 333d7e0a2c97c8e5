"""vmaptrain.machine on the machine the tests run on (its real lscpu and /proc/cpuinfo)."""

import platform
import sys

import pytest

from vmaptrain import machine

X86_64 = platform.machine().lower() in ("x86_64", "amd64")
LINUX = sys.platform.startswith("linux")


def test_cpu_model_is_one_nonempty_line():
    model = machine.cpu_model()
    assert isinstance(model, str)
    assert model and model == model.strip()
    assert "\n" not in model


@pytest.mark.skipif(not (LINUX and X86_64), reason="x86-64 Linux names its CPU in /proc/cpuinfo")
def test_cpu_model_is_not_just_the_architecture_on_x86_64_linux():
    assert machine.cpu_model() not in (platform.machine(), "unknown")


def test_cpu_flags_are_single_words():
    flags = machine.cpu_flags()
    assert isinstance(flags, frozenset)
    assert all(isinstance(f, str) and f and not any(c.isspace() for c in f) for f in flags)


@pytest.mark.skipif(not (LINUX and X86_64), reason="x86-64 flags (SSE2 is part of the x86-64 baseline)")
def test_cpu_flags_of_an_x86_64_cpu():
    flags = machine.cpu_flags()
    assert "sse2" in flags
    assert "flags" not in flags and ":" not in flags  # the line's values, not its field name
