"""How long `vmaptrain.compare` takes on two large arms: R runs × n test examples of predictions each.

    PYTHONPATH=. python benchmarks/compare_speed.py                 # 10,000 × 10,000 per arm
    PYTHONPATH=. python benchmarks/compare_speed.py --runs=60000 --repeats=1

The arms are synthetic int8 predictions with about 90% accuracy (the comparison's cost does not
depend on the values). Prints the CPU model and the median of --repeats timed calls.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vmaptrain import cli, machine  # noqa: E402
from vmaptrain.config import StudyError  # noqa: E402

_RUNS = flags.DEFINE_integer("runs", 10_000, "Runs per arm.")
_EXAMPLES = flags.DEFINE_integer("examples", 10_000, "Test examples.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls (the median is reported).")


def arm(rng: np.random.Generator, labels: np.ndarray, runs: int) -> np.ndarray:
    wrong = rng.integers(0, 10, size=(runs, labels.size), dtype=np.int8) == 0
    return np.where(wrong, (labels + 1) % 10, labels).astype(np.int8)


def benchmark(runs: int, examples: int, repeats: int) -> None:
    if runs < 2 or examples < 2 or repeats < 1:
        raise StudyError("--runs and --examples must be ≥ 2 and --repeats ≥ 1")
    import vmaptrain

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, examples).astype(np.int8)
    a, b = arm(rng, labels, runs), arm(rng, labels, runs)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = vmaptrain.compare(labels, a=a, b=b, num_classes=10)
        seconds.append(time.perf_counter() - start)
    print(f"cpu: {machine.cpu_model()} ({os.cpu_count()} cores)")
    print(f"compare on two arms of {runs:,} runs × {examples:,} examples (int8 predictions)")
    print(f"median {statistics.median(seconds):.2f} s over {repeats} calls: {', '.join(f'{s:.2f}' for s in seconds)}")
    print(result["verdict"])


def main(argv) -> None:
    cli.reject_extra_args(argv)
    cli.run_or_exit(lambda: benchmark(_RUNS.value, _EXAMPLES.value, _REPEATS.value))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
