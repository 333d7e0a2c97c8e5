"""Whole commands, as a user types them, against the PyTorch loop they would run instead.

Every variant is a fresh process timed from outside (wall clock of `subprocess.run`), interleaved
round by round (A B C, A B C, …, the order rotating) so that load from elsewhere hits all alike;
the medians and their ratios are printed with the machine's CPU model and written as JSON.

Cases:
- `readme`: the README's digits study (`python experiments/train_seeds.py --workdir=W`: 32 runs ×
  20 epochs, every default) vs the same runs in PyTorch eager (benchmarks/torch_reference.py);
- `fmnist`: 8 runs × 1 epoch of Fashion-MNIST at batch 256 (`idx:` files from Debian's
  dataset-fashion-mnist) vs the same in PyTorch.
Variants of each vmaptrain command: `cold` (an empty compilation cache and autotune cache of its
own: the first run of a configuration on a machine) and `warm` (the same command again, its
compilation cache filled by an untimed run first).
Each vmaptrain sample also carries the study's phase clock (the workdir's timings.json: data,
setup, compile, train, evaluate, estimators, plots, write) and the rest of the wall time as
start-up (interpreter and imports); their medians are printed per variant.

    PYTHONPATH=. python benchmarks/study_wall.py --reps=3
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from vmaptrain import cli, machine, store  # noqa: E402

FASHION = "idx:/usr/share/datasets/fashion-mnist"
CASES = {
    "readme": {"vmaptrain": [], "torch": ["--dataset=digits", "--num_runs=32", "--epochs=20", "--batch_size=64"]},
    "fmnist": {
        "vmaptrain": [f"--dataset={FASHION}", "--num_seeds=8", "--epochs=1", "--batch_size=256"],
        "torch": [f"--dataset={FASHION}", "--num_runs=8", "--epochs=1", "--batch_size=256"],
    },
}

_CASES = flags.DEFINE_list("cases", list(CASES), f"Which cases: {', '.join(CASES)}.")
_REPS = flags.DEFINE_integer("reps", 3, "Timed rounds (medians reported).", lower_bound=1)
_OUT = flags.DEFINE_string("out", os.path.join(REPO, "benchmarks", "results", "study_wall_cpu.json"), "JSON output.")


def _timed(command: list[str], env: dict, workdir: str | None = None) -> dict:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    compiled = re.search(r"compiled in ([0-9.]+) s", proc.stderr)
    result = {"wall_s": wall, "compile_s": float(compiled.group(1)) if compiled else None, "stdout": proc.stdout[-400:]}
    if workdir is not None:
        # The study's own phase clock; what it does not cover is process start-up and imports.
        phases = store.read_json(os.path.join(workdir, "timings.json"))
        result["phases_s"] = {"start-up": wall - sum(phases.values()), **phases}
    return result


def _phase_medians(samples: list[dict]) -> dict:
    names = [name for name in samples[0].get("phases_s", {})]
    return {name: statistics.median(s["phases_s"][name] for s in samples) for name in names}


def _case(name: str, reps: int, scratch: str, log) -> dict:
    spec = CASES[name]
    python = sys.executable
    warm_cache = os.path.join(scratch, f"{name}-warm")
    base = dict(os.environ, PYTHONUNBUFFERED="1")
    base.pop("VMAPTRAIN_COMPILATION_CACHE", None)

    def vmaptrain(tag: str):
        workdir = tempfile.mkdtemp(dir=scratch, prefix=f"{name}-{tag}-")
        cache = warm_cache if tag == "warm" else tempfile.mkdtemp(dir=scratch, prefix=f"{name}-cache-")
        env = dict(base, VMAPTRAIN_CACHE_DIR=cache)
        command = [python, "experiments/train_seeds.py", f"--workdir={workdir}/w", *spec["vmaptrain"]]
        try:
            return _timed(command, env, f"{workdir}/w")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            if tag != "warm":
                shutil.rmtree(cache, ignore_errors=True)

    def torch():
        return _timed([python, "benchmarks/torch_reference.py", *spec["torch"]], base)

    variants = {
        "vmaptrain cold": lambda: vmaptrain("cold"),
        "vmaptrain warm": lambda: vmaptrain("warm"),
        "pytorch": torch,
    }
    log(f"{name}: warming the compilation cache (untimed)")
    vmaptrain("warm")
    samples = {v: [] for v in variants}
    order = list(variants)
    for rep in range(reps):
        for variant in order[rep % len(order) :] + order[: rep % len(order)]:
            result = variants[variant]()
            samples[variant].append(result)
            log(f"  {name} round {rep + 1}: {variant:15s} {result['wall_s']:7.1f} s")
    medians = {v: statistics.median(r["wall_s"] for r in rs) for v, rs in samples.items()}
    ratios = {
        "pytorch / vmaptrain cold": medians["pytorch"] / medians["vmaptrain cold"],
        "pytorch / vmaptrain warm": medians["pytorch"] / medians["vmaptrain warm"],
    }
    for v, m in medians.items():
        log(f"  {name}: {v:15s} median {m:7.1f} s")
    phases = {v: _phase_medians(rs) for v, rs in samples.items() if "phases_s" in rs[0]}
    for v, by_phase in phases.items():
        log(f"  {name}: {v:15s} phases (medians, s): " + ", ".join(f"{k} {t:.1f}" for k, t in by_phase.items()))
    for r, value in ratios.items():
        log(f"  {name}: speed-up {r}: {value:.2f}×")
    return {"commands": spec, "median_s": medians, "ratios": ratios, "phases_median_s": phases, "samples": samples}


def benchmark(cases: list[str], reps: int, out: str) -> dict:
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise cli.StudyError(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    log = lambda message: print(message, flush=True)
    log(f"cpu: {machine.cpu_model()} ({os.cpu_count()} cores)")
    report = {
        "command": " ".join(["python"] + sys.argv),
        "cpu_model": machine.cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_start": os.getloadavg(),
        "cases": {},
    }
    with tempfile.TemporaryDirectory(prefix="study_wall-") as scratch:
        for name in cases:
            report["cases"][name] = _case(name, reps, scratch, log)
    report["load_average_end"] = os.getloadavg()
    store.write_report(out, report)
    log(f"wrote {out}")
    return report


def main(argv) -> None:
    cli.reject_extra_args(argv)
    cli.run_or_exit(lambda: benchmark(_CASES.value, _REPS.value, _OUT.value))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
