"""The persistent compilation cache: on by default, private, split by machine, and an executable
loaded from it computes bitwise what a freshly compiled one computes."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest

import helpers
from vmaptrain.engine import compilation_cache
from vmaptrain.engine.strategy import Strategy, default_group_size

_STUDY = """
import hashlib, json, sys
import jax, numpy as np
events = {}
jax.monitoring.register_event_listener(lambda name, **kw: events.__setitem__(name, events.get(name, 0) + 1))
from vmaptrain.study import SeedStudy
result = SeedStudy(num_seeds=2, epochs=1, width=0.25, batch_size=128).run(progress=False)
print(json.dumps({"sha": hashlib.sha256(np.asarray(result.logits, np.float32).tobytes()).hexdigest(),
                  "hits": events.get("/jax/compilation_cache/cache_hits", 0),
                  "misses": events.get("/jax/compilation_cache/cache_misses", 0)}))
"""


def _study(cache: str) -> dict:
    proc = helpers.run_python_env(_STUDY, VMAPTRAIN_COMPILATION_CACHE=cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_warm_cache_skips_compilation_and_gives_bitwise_the_same_logits(tmp_path):
    cache = str(tmp_path / "xla")
    cold = _study(cache)
    assert cold["misses"] > 0 and cold["hits"] == 0
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    warm = _study(cache)
    assert warm["hits"] >= cold["misses"] and warm["misses"] == 0  # nothing compiled again
    off = _study("off")
    assert off["hits"] == off["misses"] == 0
    assert cold["sha"] == warm["sha"] == off["sha"]


def test_the_default_directory_is_private_and_keyed_by_the_machine(tmp_path, monkeypatch):
    monkeypatch.delenv(compilation_cache.ENV, raising=False)
    monkeypatch.setenv("VMAPTRAIN_CACHE_DIR", str(tmp_path))
    path = compilation_cache.directory()
    assert path == os.path.join(str(tmp_path), "xla", compilation_cache.machine_key())
    assert len(compilation_cache.machine_key()) == 16
    monkeypatch.setenv(compilation_cache.ENV, "off")
    assert compilation_cache.directory() is None


def test_a_directory_others_may_write_is_not_used(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    assert compilation_cache._private(str(shared)) == "others may write to it"
    private = tmp_path / "private" / "xla"
    assert compilation_cache._private(str(private)) is None
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o700


def test_unrolled_programs_are_capped_and_groups_equal():
    unrolled, serial, vmap = (Strategy.parse(s) for s in ("unrolled", "serial+direct+eigen", "vmap"))
    assert default_group_size(32, serial, 1) == 8
    assert default_group_size(20, unrolled, 1) == 5  # equal groups: one program size
    assert default_group_size(13, unrolled, 1) == 8  # no equal split near the cap: 8 + 5
    assert default_group_size(6, unrolled, 1) == 6
    assert default_group_size(1000, unrolled, 2) == 10  # 2 devices: up to 16, equal split 10
    assert default_group_size(1000, vmap, 1) == 1000
    default = Strategy.parse("default")
    assert str(default.for_platform("cpu", "AMD EPYC")) == "unrolled+direct+eigen"
    assert str(default.for_platform("cpu", "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz")) == "serial+direct+eigen"
    assert str(default.for_platform("cpu", "")) == "serial+direct+eigen"
    assert default.for_platform("gpu").is_auto and default.for_platform("cpu").unrolled


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
