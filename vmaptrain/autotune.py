"""`strategy="auto"`: time a few training steps of each candidate strategy, keep the fastest.

The measurement uses the study's own model, batch, image shape, number of runs per program and
device, so the choice is made for what will actually run. Choices are cached in a JSON file
(`$VMAPTRAIN_CACHE_DIR/autotune.json`, default `~/.cache/vmaptrain/autotune.json`) keyed by
model, width, batch size, image shape, runs per program, device kind and count, the jax version
and, on CPU, the CPU model and features (every CPU is device kind "cpu"); an entry records every
candidate's time, so the choice can be audited: it is the argmin of the recorded timings.

"auto" only picks among float32 strategies that compute the same function (bf16 is opt-in).
Multi-process studies skip the timing (every process must compile the same program, and
timings differ between processes) and use the platform's first candidate.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

import jax

from vmaptrain import machine
from vmaptrain.engine import compilation_cache
from vmaptrain.engine.programs import programs_for
from vmaptrain.engine.trainer import GroupTrainer

log = logging.getLogger("vmaptrain.autotune")

# Per platform, best guess first. XLA:CPU: no plain "vmap" (grouped convolutions ~2× slower than
# dense ones, BUILD_NOTES.md "Measured") and no "map" (convolutions in a loop ~80× slower).
# "+eigen" (XLA's multi-threaded convolutions instead of YNNPACK's single-threaded ones) won for
# the reference net at S = 8 once timings were free of page-fault noise (hostmem.py), lost for
# others: timed, not assumed. Every candidate is a compilation (a minute for a ResNet at S = 8),
# so forms that never won in BUILD_NOTES' registry runs ("serial", "unrolled+eigen") are left out.
CPU_CANDIDATES = (
    "unrolled",
    "unrolled+direct",
    "unrolled+direct+eigen",
    "serial+direct",
    "serial+direct+eigen",
    "vmap+perrun+direct",
)
# One run per device: every form is the same dense run, so only kernel and compile options differ.
CPU_SINGLE_RUN_CANDIDATES = ("unrolled", "unrolled+direct", "unrolled+eigen", "unrolled+direct+eigen")
GPU_CANDIDATES = ("vmap", "vmap+direct", "vmap+perrun", "chunk:{half}", "map:{quarter}")


def candidates_for(platform: str, runs_per_device: int) -> list[str]:
    """Candidate strategies for `runs_per_device` runs in one program on `platform`."""
    env = os.environ.get("VMAPTRAIN_AUTO_CANDIDATES")
    if env:
        return [c.strip() for c in env.split(",") if c.strip()]
    if platform == "cpu":
        found = list(CPU_CANDIDATES)
    else:
        found = [
            c.format(half=max(1, runs_per_device // 2), quarter=max(1, runs_per_device // 4)) for c in GPU_CANDIDATES
        ]
        if runs_per_device <= 8:
            found.append("unrolled")  # compile time grows with S: only for few runs
    if runs_per_device == 1:  # every form is one dense run: only the kernel options differ
        found = (
            list(CPU_SINGLE_RUN_CANDIDATES)
            if platform == "cpu"
            else [c for c in found if c.startswith("unrolled")] or ["unrolled"]
        )
    return list(dict.fromkeys(found))


def cache_path() -> str:
    root = os.environ.get("VMAPTRAIN_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "vmaptrain")
    return os.path.join(root, "autotune.json")


def cache_key(
    *,
    model: str,
    width: float,
    batch_size: int,
    image_shape: Sequence[int],
    runs_per_device: int,
    devices: Sequence,
    candidates: Sequence[str],
) -> str:
    device = devices[0]
    fields = {
        "model": model,
        "width": float(width),
        "batch_size": int(batch_size),
        "image_shape": [int(s) for s in image_shape],
        "runs_per_device": int(runs_per_device),
        "device_kind": getattr(device, "device_kind", device.platform),
        "platform": device.platform,
        "devices": len(devices),
        "jax": jax.__version__,
        "candidates": list(candidates),
    }
    if device.platform == "cpu":  # every CPU is device kind "cpu": the winner depends on which one
        fields["cpu"] = machine.cpu_model()
        fields["machine"] = compilation_cache.machine_key()
    return json.dumps(fields, sort_keys=True)


def read_cache(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(path: str, key: str, entry: dict) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = read_cache(path)
        data[key] = entry
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".autotune-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.replace(tmp, path)  # readers never see a half-written cache
    except OSError as err:  # a read-only home must not stop a study
        log.warning("autotune: cannot write cache %s: %s", path, err)


def choose(
    key: str, candidates: Sequence[str], measure: Callable[[str], float], path: str | None = None, refresh: bool = False
) -> tuple[str, dict]:
    """The candidate with the smallest `measure(candidate)` (seconds per step), and its cache entry.

    A cached entry for `key` is reused without measuring unless `refresh`. A candidate whose
    measurement raises (e.g. out of memory) is recorded as failed and never chosen.
    """
    path = path or cache_path()
    if not refresh:
        entry = read_cache(path).get(key)
        if entry and entry.get("choice") in candidates:
            return entry["choice"], entry
    timings, errors = {}, {}
    for candidate in candidates:
        try:
            seconds = float(measure(candidate))
        except Exception as err:  # noqa: BLE001 — any failure just disqualifies the candidate
            errors[candidate] = f"{type(err).__name__}: {str(err)[:200]}"
            continue
        if math.isfinite(seconds):
            timings[candidate] = seconds
        else:
            errors[candidate] = f"non-finite time {seconds}"
    if not timings:
        raise RuntimeError(f"strategy auto: every candidate failed: {errors}")
    choice = min(timings, key=timings.get)
    entry = {
        "choice": choice,
        "seconds_per_step": timings,
        "failed": errors,
        "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    _write_cache(path, key, entry)
    return choice, entry


def warm_up(step_fns: dict) -> None:
    """Call each zero-argument `step_fns[name]()` twice (compile, warm), then once more in turn:
    that interleaved pass lets the host heap grow to what alternating programs need (~100 000
    page faults for some first calls at S = 8, not a property of any one program)."""
    for fn in step_fns.values():
        jax.block_until_ready(fn())
        jax.block_until_ready(fn())
    for fn in step_fns.values():
        jax.block_until_ready(fn())


def time_programs(step_fns: dict, rounds: int = 5, steps: int = 2) -> dict:
    """Median seconds per call of each zero-argument `step_fns[name]()` (which must return
    something to block on) after `warm_up`, interleaving the candidates round by round so that
    load on a shared machine hits all of them alike."""
    warm_up(step_fns)
    samples = {name: [] for name in step_fns}
    for _ in range(rounds):
        for name, fn in step_fns.items():
            start = time.perf_counter()
            for _ in range(steps):
                out = fn()
            jax.block_until_ready(out)
            samples[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(values) for name, values in samples.items()}


def study_stepper(config, spec, data, devices: tuple, strategy, group: int):
    """A zero-argument function taking one training step of `group` runs of the study with
    `strategy`, through the engine's programs (cached: the study itself reuses them) and its
    group trainer; it returns the loss sum to block on."""
    trainer = GroupTrainer(programs_for(spec, strategy, devices), config, data)
    box = {"state": trainer.init(range(group))}

    def step():
        k = box["state"].step % spec.steps_per_epoch  # steps of epoch 0, over and over
        box["state"] = trainer.train(box["state"], k, k + 1)
        return box["state"].loss_sum

    return step


def resolve(config, spec, data, devices: tuple, group: int, *, stream=None, refresh: bool = False) -> str:
    """The strategy "auto" stands for in this study (measured, or read from the cache); the
    choice is logged and written to `stream` (default: the current sys.stderr)."""
    stream = stream or sys.stderr
    device = devices[0]
    per_device = max(1, group // len(devices))
    candidates = candidates_for(device.platform, per_device)
    if jax.process_count() > 1:
        choice = candidates[0]
        _say(stream, f"strategy auto → {choice} (multi-process: not timed)")
        return choice
    key = cache_key(
        model=config.model,
        width=config.width,
        batch_size=config.batch_size,
        image_shape=data.x_train.shape[1:],
        runs_per_device=per_device,
        devices=devices,
        candidates=candidates,
    )
    path = cache_path()
    steppers = {}

    def measure_all():
        _say(stream, f"strategy auto: timing {len(candidates)} candidates (each compiled once; the choice is cached)")
        for candidate in candidates:
            try:
                steppers[candidate] = study_stepper(config, spec, data, devices, candidate, group)
            except Exception as err:  # noqa: BLE001
                steppers[candidate] = err
        runnable = {c: s for c, s in steppers.items() if not isinstance(s, Exception)}
        return time_programs(runnable) if runnable else {}

    timings = None

    def measure(candidate):
        nonlocal timings
        if timings is None:  # time all candidates together, interleaved
            timings = measure_all()
        if isinstance(steppers.get(candidate), Exception):
            raise steppers[candidate]
        return timings[candidate]

    started = time.perf_counter()
    choice, entry = choose(key, candidates, measure, path, refresh=refresh)
    times = ", ".join(f"{c} {1000 * s:.1f}" for c, s in sorted(entry["seconds_per_step"].items(), key=lambda i: i[1]))
    source = "cached" if timings is None else f"measured in {time.perf_counter() - started:.0f} s"
    _say(stream, f"strategy auto → {choice} ({source}, ms per step of {group} runs: {times}; cache {path})")
    return choice


def _say(stream, message: str) -> None:
    log.info(message)
    if stream is not None and jax.process_index() == 0:
        stream.write(f"vmaptrain: {message}\n")
        stream.flush()
