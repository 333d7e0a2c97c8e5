"""Times `vmaptrain.estimators.report` on a synthetic study of R × n predictions.

Run: python benchmarks/estimators_report.py [--runs=10000] [--examples=10000]

The study mimics 64-epoch CIFAR-10 ResNet-9 runs: 70% of examples (1 - hard_fraction) are
always right, the rest have error rates ~ Beta(0.5, 2) (mean error ≈ 6%), and a small shared run effect
(latent Gaussian, correlation 0.0003) gives a non-zero distribution-wise variance. Prints
the wall time of the first call (includes jit compilation) and of a second call, plus the
split between the streaming pass and the estimators.
"""

import time

import numpy as np
from absl import app, flags
from scipy.special import ndtri

from vmaptrain import cli, estimators, machine

_RUNS = flags.DEFINE_integer("runs", 10_000, "R, number of runs", lower_bound=2)
_EXAMPLES = flags.DEFINE_integer("examples", 10_000, "n, number of test examples", lower_bound=2)
_CLASSES = flags.DEFINE_integer("classes", 10, "k (predictions are stored as uint8)", lower_bound=2, upper_bound=256)
_SEED = flags.DEFINE_integer("seed", 0, "seed of the synthetic study")
_HARD = flags.DEFINE_float(
    "hard_fraction",
    0.3,
    "fraction of examples that are not always right (1.0: worst case)",
    lower_bound=0.0,
    upper_bound=1.0,
)


def synthetic_predictions(num_runs, num_examples, num_classes, seed, hard_fraction=0.3):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, num_examples).astype(np.int32)
    error_rate = np.where(rng.random(num_examples) >= hard_fraction, 0.0, rng.beta(0.5, 2.0, num_examples))
    cutoff = ndtri(np.clip(error_rate, 1e-12, 1 - 1e-12)).astype(np.float32)
    cutoff[error_rate == 0] = -np.inf
    rho = 0.0003
    preds = np.empty((num_runs, num_examples), np.uint8)
    for start in range(0, num_runs, 1000):
        rows = min(1000, num_runs - start)
        latent = np.sqrt(rho) * rng.standard_normal((rows, 1), np.float32) + np.sqrt(1 - rho) * rng.standard_normal(
            (rows, num_examples), np.float32
        )
        wrong = latent < cutoff
        other = (labels + rng.integers(1, num_classes, (rows, num_examples))) % num_classes
        preds[start : start + rows] = np.where(wrong, other, labels)
    return labels, preds


def benchmark(num_runs, num_examples, num_classes, seed, hard_fraction):
    print(f"cpu: {machine.cpu_model()}", flush=True)
    labels, preds = synthetic_predictions(num_runs, num_examples, num_classes, seed, hard_fraction)
    print(f"study: R={num_runs} runs x n={num_examples} examples, k={num_classes}")
    for attempt in ("first call (with compilation)", "second call"):
        start = time.perf_counter()
        stats = estimators.collect_statistics(labels, preds=preds, num_classes=num_classes)
        middle = time.perf_counter()
        result = estimators.summarize(stats)
        end = time.perf_counter()
        print(
            f"{attempt}: report {end - start:.2f} s "
            f"(streaming pass {middle - start:.2f} s, estimators {end - middle:.2f} s)"
        )
    print(
        f"accuracy {result['accuracy_mean']:.4f} ± {result['accuracy_std']:.5f}, "
        f"dist_std {result['dist_std']:.5f}, pairs deviating {result['pairs_deviating']} "
        f"(expected {result['pairs_deviating_expected']:.1f}) among "
        f"{result['pairs_candidate_examples']} candidate examples"
    )


def main(argv):
    cli.reject_extra_args(argv)
    cli.run_or_exit(lambda: benchmark(_RUNS.value, _EXAMPLES.value, _CLASSES.value, _SEED.value, _HARD.value))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
