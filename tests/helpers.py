"""Running the train_seeds binary as a user would: a subprocess, or in-process for speed."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout

from vmaptrain import study

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(REPO, "experiments", "train_seeds.py")
# A resumable study small enough for tests: digits, half-width CNN, two groups.
STUDY_FLAGS = [
    "--num_seeds=4",
    "--group_size=2",
    "--epochs=3",
    "--batch_size=32",
    "--width=0.5",
    "--checkpoint_every_steps=4",
]


def env(devices: int = 1, **extra) -> dict:
    variables = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    variables["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    variables.update(extra)
    return variables


def start(args, devices: int = 1, **extra) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, BINARY, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(devices, **extra),
        cwd=REPO,
    )


def run(args, devices: int = 1, timeout: float = 600, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, BINARY, *args],
        capture_output=True,
        text=True,
        env=env(devices, **extra),
        cwd=REPO,
        timeout=timeout,
    )


def wait_for_checkpoint(workdir: str, proc: subprocess.Popen, timeout: float = 300) -> bool:
    """Poll until a finished orbax step directory exists under workdir/checkpoints."""
    deadline = time.time() + timeout
    root = os.path.join(workdir, "checkpoints")
    while time.time() < deadline and proc.poll() is None:
        for _dirpath, dirnames, _ in os.walk(root):
            if any(d.isdigit() for d in dirnames):
                return True
        time.sleep(0.01)
    return False


def run_in_process(args) -> tuple[int, str, str]:
    """The binary's main() in this process (flags re-parsed); returns (exit code, stdout, stderr)."""
    from absl import flags

    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    import importlib

    from vmaptrain import cli

    module = importlib.import_module("experiments.train_seeds")
    flags.FLAGS.unparse_flags()
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            module.main(cli.parse_flags(["train_seeds", *args]))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def run_python_env(code: str, timeout: float = 300, **extra) -> subprocess.CompletedProcess:
    """`python -c code` in a fresh process with extra environment variables."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env(1, **extra), cwd=REPO, timeout=timeout
    )


def run_python(code: str, devices: int = 1, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env(devices), cwd=REPO, timeout=timeout
    )


def example_step_hlo(num_runs: int | None = None) -> str:
    """Compiled HLO of a small digits study's training step over all devices (for audits)."""
    import numpy as np

    from vmaptrain.config import StudyConfig
    from vmaptrain.data import load_dataset
    from vmaptrain.engine import placement
    from vmaptrain.engine.programs import programs_for
    from vmaptrain.engine.trainer import GroupTrainer
    from vmaptrain.specs import build_spec

    mesh = placement.seed_mesh()
    runs = num_runs or 2 * mesh.devices.size
    config = StudyConfig(dataset="digits", width=0.5, num_seeds=runs, epochs=1)
    data = load_dataset("digits")
    spec = build_spec(config, data)
    programs = programs_for(spec, config.strategy, tuple(mesh.devices.flat))
    trainer = GroupTrainer(programs, config, data)
    state = trainer.init(range(runs)).run
    dev, perms = trainer.dev, programs.permutations(state.order_key, np.int32(0), len(data.y_train))
    return programs.step_hlo(state, perms, dev, np.int32(0), np.int32(0))


_RUN_MAINS = """
import contextlib, importlib, io, json, sys
from absl import flags
from vmaptrain import cli
results = []
for module_name, args in json.loads(sys.argv[1]):
    module = importlib.import_module(module_name)
    flags.FLAGS.unparse_flags()
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            module.main(cli.parse_flags([module_name, *args]))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    results.append([code, out.getvalue(), err.getvalue()])
print("RESULTS" + json.dumps(results))
"""


def run_mains(calls: list[tuple[str, list[str]]], timeout: float = 900) -> list[tuple[int, str, str]]:
    """Several binaries' main() in one fresh process (one flag namespace each time, shared
    compilations); returns (exit code, stdout, stderr) per call."""
    import json

    proc = subprocess.run(
        [sys.executable, "-c", _RUN_MAINS, json.dumps(calls)],
        capture_output=True,
        text=True,
        env=env(),
        cwd=REPO,
        timeout=timeout,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULTS")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return [tuple(r) for r in json.loads(lines[-1][len("RESULTS") :])]


class StopAfter(study.TermGuard):
    """A TermGuard whose SIGTERM 'arrives' at the `checks`-th training step (the save+exit path);
    patch it in with `monkeypatch.setattr(study, "TermGuard", lambda: StopAfter(n))`."""

    def __init__(self, checks):
        super().__init__()
        self.checks = checks

    @property
    def stop(self):
        self.checks -= 1
        return self.checks < 0

    @stop.setter
    def stop(self, value):
        pass
