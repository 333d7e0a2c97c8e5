"""Is configuration A better than B? Two questions, two variances (docs/comparison.md).

Both arms are runs evaluated on one shared test set of n examples. Δ̂ is the difference of their
mean accuracies, and it answers two different questions:

- **Q1, this test set**: would fresh runs of A score higher than fresh runs of B on these n
  examples? Var(Δ̂) = s_A²/R_A + s_B²/R_B: the run-to-run variance only (a Welch test).
- **Q2, the distribution**: would A generalise better than B on new data? The test set is itself
  a sample, so Var_x(d)/n joins, where d(x) = p_A(x) − p_B(x) is the per-example difference of the
  arms' probabilities of being right. It does not shrink with more runs.

Var_x(d) is estimated from the per-example differences d̂_i = p̂_A,i − p̂_B,i with the binomial
noise of each p̂ removed (p̂(1 − p̂)/(R − 1) estimates Var(p̂) without bias). The arms are paired
through the shared examples, which is why this is much smaller than Var_x(p_A) + Var_x(p_B).

Everything is computed from per-run and per-example correct counts, one pass over each arm in
chunks of runs, so memory-mapped [R, n] predictions or [R, n, k] logits of any size work.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats

from vmaptrain.estimators.distribution import distribution_std, distribution_variance
from vmaptrain.estimators.errors import EstimatorInputError, check_labels, check_num_classes
from vmaptrain.estimators.independence import independent_errors_variance

# Below this many runs in either arm the interval uses Student-t quantiles with Welch–Satterthwaite
# degrees of freedom instead of the normal quantile.
NORMAL_FROM_RUNS = 30
# Elements per chunk when reducing an arm (predictions or logits) to its correct counts.
_CHUNK_ELEMENTS = 2**24


@dataclasses.dataclass(frozen=True)
class ArmCounts:
    """Sufficient statistics of one arm: its runs' correct counts on the shared test set."""

    run_correct: np.ndarray  # [R] int64: examples run r gets right
    example_correct: np.ndarray  # [n] int64: runs that get example i right
    num_classes: int | None  # k where the arm says (logits), else None

    @property
    def num_runs(self) -> int:
        return int(self.run_correct.shape[0])

    @property
    def num_examples(self) -> int:
        return int(self.example_correct.shape[0])

    @property
    def run_accuracy(self) -> np.ndarray:
        return self.run_correct / self.num_examples

    @property
    def example_rate(self) -> np.ndarray:
        """p̂_i: the fraction of runs right on example i."""
        return self.example_correct / self.num_runs


def count_correct(
    labels: Any, arm: Any, name: str = "arm", num_classes: int | None = None, runs: Any = None
) -> ArmCounts:
    """Reduces one arm, [R, n] integer predictions or [R, n, k] float logits (numpy, memmap or jax),
    to its correct counts, chunk by chunk of runs, reading only the runs `runs` (indices into the
    first axis) when given. Raises EstimatorInputError on malformed input."""
    labels = check_labels(labels)
    shape = tuple(int(d) for d in np.shape(arm))
    dtype = np.dtype(getattr(arm, "dtype", np.asarray(arm).dtype))
    if len(shape) not in (2, 3):
        raise EstimatorInputError(
            f"{name}: expected [runs, examples] predictions or [runs, examples, classes] logits, got shape {shape}"
        )
    if shape[1] != labels.shape[0]:
        raise EstimatorInputError(f"{name} has {shape[1]} examples per run but labels has {labels.shape[0]}")
    selected = np.arange(shape[0]) if runs is None else np.asarray(runs, np.int64).reshape(-1)
    if selected.size < 1:
        raise EstimatorInputError(f"{name} has no runs")
    if selected.min() < 0 or selected.max() >= shape[0]:
        raise EstimatorInputError(f"{name}: run indices outside 0..{shape[0] - 1}")
    is_logits = len(shape) == 3
    if is_logits:
        if dtype.kind != "f" and dtype.name != "bfloat16":
            raise EstimatorInputError(f"{name}: logits must have a float dtype, got {dtype}")
        if num_classes is not None and shape[2] != num_classes:
            raise EstimatorInputError(f"{name} has {shape[2]} classes, expected {num_classes}")
        num_classes = shape[2]
    elif dtype.kind not in "iu":
        raise EstimatorInputError(f"{name}: predictions must be integer class ids, got {dtype}")
    if num_classes is not None:
        check_num_classes(num_classes, labels)
    num_runs, num_examples = selected.size, shape[1]
    per_run = num_examples * (shape[2] if is_logits else 1)
    chunk = max(1, _CHUNK_ELEMENTS // per_run)
    run_correct = np.zeros(num_runs, np.int64)
    example_correct = np.zeros(num_examples, np.int64)
    contiguous = runs is None
    for start in range(0, num_runs, chunk):
        indices = selected[start : start + chunk]
        block = np.asarray(arm[start : start + chunk] if contiguous else arm[indices])
        if is_logits:
            finite = np.isfinite(block).all(axis=(1, 2))
            if not finite.all():
                raise EstimatorInputError(
                    f"{name}: the logits of run {int(indices[np.argmin(finite)])} contain NaN or inf"
                )
            block = block.argmax(axis=-1)
        elif block.min() < 0 or (num_classes is not None and block.max() >= num_classes):
            raise EstimatorInputError(f"{name}: predictions out of range [0, {num_classes or 'k'})")
        correct = block == labels[None, :]
        run_correct[start : start + len(block)] = correct.sum(axis=1)
        example_correct += correct.sum(axis=0)
    return ArmCounts(run_correct=run_correct, example_correct=example_correct, num_classes=num_classes)


def predicted_run_variance(counts: ArmCounts) -> tuple[float, float]:
    """A-priori test-set variance of one run's accuracy, from its error rate alone (Calibrated
    Chaos §3.3): (upper, lower) = (err/(2n), err/(n·k)). Both assume a class-wise calibrated
    vote ensemble and no excess distribution-wise variance. err/(2n) is Theorem 3 (exact for two
    classes); for k classes Σ_c q_c²(1 − q_c) ≤ ½ Σ_c q_c(1 − q_c) makes it an upper bound, and
    Theorem 4 gives the lower one. With k unknown the lower bound is None."""
    n = counts.num_examples
    error = 1.0 - float(counts.run_accuracy.mean())
    upper = error / (2 * n)
    lower = error / (n * counts.num_classes) if counts.num_classes else None
    return upper, lower


def arm_summary(counts: ArmCounts) -> dict:
    """Per arm: runs, mean accuracy, std across runs, the std that independent errors predict, and
    the distribution-wise std (Theorem 2). Spreads need two runs; with one they are None."""
    num_runs, n = counts.num_runs, counts.num_examples
    summary = {"runs": num_runs, "mean": float(counts.run_accuracy.mean())}
    if num_runs < 2:
        upper, lower = predicted_run_variance(counts)
        return {
            **summary,
            "std": None,
            "independent_errors_std": None,
            "distribution_std": None,
            "predicted_std": math.sqrt(upper),
            "predicted_std_lower_bound": None if lower is None else math.sqrt(lower),
        }
    variance = float(distribution_variance(counts.run_correct, counts.example_correct, n))
    return {
        **summary,
        "std": float(counts.run_accuracy.std(ddof=1)),
        "independent_errors_std": float(np.sqrt(independent_errors_variance(counts.example_correct, num_runs))),
        "distribution_std": float(distribution_std(variance)),
        "distribution_variance": variance,
    }


@dataclasses.dataclass(frozen=True)
class RunSpread:
    """What one arm contributes to Var(Δ̂): its run-to-run variance s² (sampled, or predicted from
    its error rate), that estimate's degrees of freedom, and mean_i Var(p̂_i), the binomial noise
    its finite runs add to the per-example differences."""

    variance: float
    degrees_of_freedom: float  # R − 1 for a sample variance; inf for a prediction (taken as known)
    noise: float
    predicted: bool


def run_spread(counts: ArmCounts) -> RunSpread:
    """The arm's spread. A single run, or runs that all score the same (a sample variance of
    exactly 0, which would make any difference certain), take the a-priori prediction err/(2n):
    an upper bound under class-wise calibration, so the interval can only widen."""
    num_runs = counts.num_runs
    if num_runs >= 2:
        rate = counts.example_rate
        noise = float(np.mean(rate * (1.0 - rate)) / (num_runs - 1))  # p̂(1 − p̂)/(R − 1): unbiased
        variance = float(counts.run_accuracy.var(ddof=1))
        if variance > 0:
            return RunSpread(variance, num_runs - 1.0, noise, predicted=False)
        return RunSpread(predicted_run_variance(counts)[0], math.inf, noise, predicted=True)
    predicted = predicted_run_variance(counts)[0]
    # One run has no within-arm spread; its predicted per-example variance stands in (mean v = n·s²).
    return RunSpread(predicted, math.inf, counts.num_examples * predicted, predicted=True)


def satterthwaite(components: list[tuple[float, float]]) -> float:
    """Welch–Satterthwaite degrees of freedom of a sum of variance estimates, given as (value,
    degrees of freedom); inf where every part is known (or zero)."""
    total = sum(value for value, _ in components)
    spread = sum(value**2 / df for value, df in components if math.isfinite(df) and df > 0)
    return math.inf if spread == 0 else total**2 / spread


def _degrees_of_freedom(components: list[tuple[float, float]], runs: tuple[int, int]) -> float:
    """Student-t degrees of freedom below NORMAL_FROM_RUNS runs in either arm, else inf (normal)."""
    return math.inf if min(runs) >= NORMAL_FROM_RUNS else satterthwaite(components)


def _variance_components(spread_a: RunSpread, runs_a: int, spread_b: RunSpread, runs_b: int, example_term: float):
    """(Q1 parts, Q2 parts) of Var(Δ̂) as (value, degrees of freedom): each arm's s²/R, and for Q2
    also Var_x(d)/n, itself estimated from the n − 1 degrees of freedom of the example differences."""
    runs_part = [
        (spread_a.variance / runs_a, spread_a.degrees_of_freedom),
        (spread_b.variance / runs_b, spread_b.degrees_of_freedom),
    ]
    return runs_part, runs_part + [example_term]


def _quantile(alpha: float, degrees_of_freedom: float) -> float:
    if math.isinf(degrees_of_freedom):
        return float(stats.norm.ppf(1 - alpha / 2))
    return float(stats.t.ppf(1 - alpha / 2, degrees_of_freedom))


def _p_value(estimate: float, variance: float, degrees_of_freedom: float) -> float:
    """Two-sided p-value of "no difference"; a zero variance (every run of both arms perfect) only
    arises with a zero difference."""
    if variance <= 0:
        return 1.0 if estimate == 0 else 0.0
    z = abs(estimate) / math.sqrt(variance)
    tail = stats.norm.sf(z) if math.isinf(degrees_of_freedom) else stats.t.sf(z, degrees_of_freedom)
    return float(min(1.0, 2 * tail))


def _probability_a_beats_b(a: ArmCounts, b: ArmCounts, var_a: float, var_b: float, delta: float) -> tuple[float, str]:
    """P(a fresh run of A scores higher than a fresh run of B on this test set), ties counted half:
    over all pairs of observed runs when both arms have two or more, else from the normal model."""
    if a.num_runs >= 2 and b.num_runs >= 2:
        sorted_b = np.sort(b.run_correct)
        below = np.searchsorted(sorted_b, a.run_correct, side="left")
        tied = np.searchsorted(sorted_b, a.run_correct, side="right") - below
        return float((below + 0.5 * tied).sum() / (a.num_runs * b.num_runs)), "pairs of observed runs"
    spread = math.sqrt(var_a + var_b)
    probability = 0.5 if spread == 0 else float(stats.norm.cdf(delta / spread))
    return probability, "normal model with predicted variances"


def _quantile_sum(alpha: float, power: float, degrees_of_freedom: float) -> float:
    """q_{1−α/2} + q_power of the normal or the Student-t distribution."""
    if math.isinf(degrees_of_freedom):
        return float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    return float(stats.t.ppf(1 - alpha / 2, degrees_of_freedom) + stats.t.ppf(power, degrees_of_freedom))


def _smallest_runs(enough, start: int) -> int | None:
    """The smallest R ≥ start with enough(R), for a condition that holds from some R on; None if
    it does not hold by 2^40 runs."""
    low, high = start - 1, max(start, 2)
    while not enough(high):
        low, high = high, high * 2
        if high > 2**40:
            return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high


def seeds_needed(
    var_a: float,
    var_b: float,
    var_x_d: float,
    num_examples: int,
    delta: float,
    alpha: float,
    power: float,
    known_variances: bool = False,
) -> dict:
    """Runs per arm for a two-sided level-α test with the given power at a true difference δ
    (docs/comparison.md §3): the smallest R with δ ≥ (q_{1−α/2} + q_power)·√Var(Δ̂ | R), where the
    quantiles are the test's own: Student-t with Satterthwaite degrees of freedom below 30 runs,
    normal from 30 (so small plans keep their power). Q2 needs δ² > K·Var_x(d)/n with
    K = (z_{1−α/2} + z_power)²; where it does not hold, no number of runs suffices on this test set,
    and the smallest test set that would (with s² ∝ 1/n, as under independent errors) is given.

    Args:
      var_a, var_b: each arm's run-to-run variance s².
      var_x_d: the per-example difference variance (clipped at 0 here).
      known_variances: s² are predictions, not sample variances (normal quantiles throughout).
    """
    plan = {"delta": delta, "alpha": alpha, "power": power}
    if not delta > 0:
        return {
            **plan,
            "test_set": None,
            "distribution": None,
            "test_examples_needed": None,
            "note": "no difference to plan for: pass delta, the smallest difference that matters",
        }
    example_term = max(var_x_d, 0.0) / num_examples

    def enough(runs: int, with_examples: bool) -> bool:
        df = math.inf if known_variances else runs - 1.0
        runs_part = [(var_a / runs, df), (var_b / runs, df)]
        parts = runs_part + [(example_term, num_examples - 1.0)] if with_examples else runs_part
        variance = sum(value for value, _ in parts)
        quantiles = _quantile_sum(alpha, power, _degrees_of_freedom(parts, (runs, runs)))
        return delta >= quantiles * math.sqrt(variance)

    k = _quantile_sum(alpha, power, math.inf) ** 2
    normal_start = max(2, math.ceil(k * (var_a + var_b) / delta**2))
    test_set = _smallest_runs(lambda runs: enough(runs, False), normal_start)
    denominator = delta**2 - k * example_term
    if denominator > 0:
        start = max(2, math.ceil(k * (var_a + var_b) / denominator))
        return {
            **plan,
            "test_set": test_set,
            "distribution": _smallest_runs(lambda runs: enough(runs, True), start),
            "test_examples_needed": None,
        }
    needed = math.floor(k * max(var_x_d, 0.0) / delta**2) + 1
    # Runs grow without bound as n approaches `needed`; at twice that size they are finite.
    doubled = 2 * needed
    runs_there = math.ceil(
        k * (var_a + var_b) * (num_examples / doubled) / (delta**2 - k * max(var_x_d, 0.0) / doubled)
    )
    return {
        **plan,
        "test_set": test_set,
        "distribution": None,
        "test_examples_needed": needed,
        "distribution_at_twice_that": max(2, runs_there),
    }


def _interval(estimate: float, variance: float, quantile: float) -> list[float]:
    half = quantile * math.sqrt(max(variance, 0.0))
    return [estimate - half, estimate + half]


def compare_counts(
    a: ArmCounts,
    b: ArmCounts,
    *,
    delta: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    single_run: bool = False,
    names: tuple[str, str] = ("A", "B"),
) -> dict:
    """The comparison of two arms' correct counts; see `compare`."""
    check_levels(alpha, power, delta)
    if a.num_examples != b.num_examples:
        raise EstimatorInputError(
            f"arms {names[0]} and {names[1]} were evaluated on {a.num_examples} and {b.num_examples} examples: "
            "not one test set"
        )
    if a.num_classes is not None and b.num_classes is not None and a.num_classes != b.num_classes:
        raise EstimatorInputError(
            f"arms {names[0]} and {names[1]} have {a.num_classes} and {b.num_classes} classes: not one task"
        )
    for name, counts in zip(names, (a, b)):
        if counts.num_runs < 2 and not single_run:
            raise EstimatorInputError(
                f"arm {name} has {counts.num_runs} run; a spread needs two, or pass single_run=True for the "
                "a-priori variance prediction"
            )
    n = a.num_examples
    estimate = float(a.run_accuracy.mean() - b.run_accuracy.mean())
    spread_a, spread_b = run_spread(a), run_spread(b)
    differences = a.example_rate - b.example_rate
    var_x_d = float(differences.var(ddof=1)) - spread_a.noise - spread_b.noise
    test_parts, distribution_parts = _variance_components(
        spread_a, a.num_runs, spread_b, b.num_runs, (max(var_x_d, 0.0) / n, n - 1.0)
    )
    var_test = sum(value for value, _ in test_parts)
    var_distribution = sum(value for value, _ in distribution_parts)
    runs = (a.num_runs, b.num_runs)
    df_test = _degrees_of_freedom(test_parts, runs)
    df_distribution = _degrees_of_freedom(distribution_parts, runs)
    probability, probability_method = _probability_a_beats_b(a, b, spread_a.variance, spread_b.variance, estimate)
    planned_delta = abs(estimate) if delta is None else float(delta)
    plan = seeds_needed(
        spread_a.variance,
        spread_b.variance,
        var_x_d,
        n,
        planned_delta,
        alpha,
        power,
        known_variances=spread_a.predicted and spread_b.predicted,
    )
    plan["delta_from"] = (
        "the observed |A − B| (planning for an observed difference is optimistic: pass delta, the smallest "
        "difference that matters)"
        if delta is None
        else "given"
    )
    predicted = [name for name, spread in zip(names, (spread_a, spread_b)) if spread.predicted]
    result = {
        "names": list(names),
        "num_examples": n,
        "delta": estimate,
        "var_test_set": var_test,
        "var_x_d": var_x_d,
        "var_distribution": var_distribution,
        "alpha": alpha,
        "degrees_of_freedom_test_set": None if math.isinf(df_test) else df_test,
        "degrees_of_freedom_distribution": None if math.isinf(df_distribution) else df_distribution,
        "ci95_test_set": _interval(estimate, var_test, _quantile(alpha, df_test)),
        "ci95_distribution": _interval(estimate, var_distribution, _quantile(alpha, df_distribution)),
        "p_value_test_set": _p_value(estimate, var_test, df_test),
        "p_value_distribution": _p_value(estimate, var_distribution, df_distribution),
        "prob_a_beats_b": probability,
        "prob_a_beats_b_from": probability_method,
        "arms": {names[0]: arm_summary(a), names[1]: arm_summary(b)},
        "seeds_needed": plan,
        "predicted_spread": predicted,
    }
    if alpha != 0.05:  # the keys keep their names; say which level they are at
        result["interval_level"] = 1 - alpha
    result["verdict"] = verdict(result)
    return result


def compare(
    labels: Any,
    a: Any,
    b: Any,
    delta: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    *,
    num_classes: int | None = None,
    single_run: bool = False,
    names: tuple[str, str] = ("A", "B"),
) -> dict:
    """Is configuration A better than B, on this test set (Q1) and on the distribution (Q2)?

    Args:
      labels: [n] integer labels of the shared test set.
      a, b: each arm's runs, [R, n] integer predictions or [R, n, k] float logits (numpy, memmap
        or jax arrays).
      delta: the difference (accuracy fraction) to plan seeds for; None plans for the observed one.
      alpha: two-sided level of the intervals and tests (0.05 gives the `ci95_*` keys 95%).
      power: power of the seed plan.
      num_classes: k, for predictions (logits say it themselves).
      single_run: allow an arm of one run; its variance is then the a-priori prediction (err/(2n),
        an upper bound under class-wise calibration) and the output says it is a prediction.
      names: the arms' names in the output.

    Returns:
      A JSON-serialisable dict: `delta` (A − B), `var_test_set`, `var_x_d` (signed), `var_distribution`,
      `ci95_test_set`, `ci95_distribution`, `p_value_test_set`, `p_value_distribution`,
      `prob_a_beats_b`, `arms` (runs, mean, std, independent-errors std, distribution-wise std),
      `seeds_needed` and `verdict`. Below 30 runs in either arm the intervals use Student-t
      quantiles with Welch–Satterthwaite degrees of freedom.
    """
    check_levels(alpha, power, delta)  # before the pass over the arms
    counts_a = count_correct(labels, a, names[0], num_classes)
    counts_b = count_correct(labels, b, names[1], num_classes)
    return compare_counts(counts_a, counts_b, delta=delta, alpha=alpha, power=power, single_run=single_run, names=names)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (the order of the input is kept)."""
    p = np.asarray(p_values, np.float64)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted_sorted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted.tolist()


def compare_arms(
    labels: Any,
    arms: Mapping[str, Any],
    delta: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    *,
    num_classes: int | None = None,
    single_run: bool = False,
) -> dict:
    """Several arms: each compared with the best one (highest mean accuracy), with each arm's
    distribution-wise std — the paper's learning-rate rule ("the largest lr without significant
    excess variance") needs that one.

    The best arm is chosen from the same data, so its comparisons are not a fixed family of m − 1:
    the p-values (of each question) are Holm-adjusted over all m(m − 1)/2 pairs of arms, which
    controls the family-wise error rate whichever arm comes out best; the rows against the best
    are a subset of that family. The intervals are each at level 1 − α, not simultaneous.

    Args:
      arms: name → [R, n] predictions or [R, n, k] logits; at least two arms.
      Others as in `compare`.
    """
    check_levels(alpha, power, delta)  # before the pass over the arms
    if len(arms) < 2:
        raise EstimatorInputError(f"need at least two arms to compare, got {len(arms)}")
    counts = {str(name): count_correct(labels, arm, str(name), num_classes) for name, arm in arms.items()}
    return compare_arm_counts(counts, delta=delta, alpha=alpha, power=power, single_run=single_run)


def compare_arm_counts(
    counts: Mapping[str, ArmCounts],
    *,
    delta: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    single_run: bool = False,
) -> dict:
    """`compare_arms` on correct counts."""
    check_levels(alpha, power, delta)
    if len(counts) < 2:
        raise EstimatorInputError(f"need at least two arms to compare, got {len(counts)}")
    names = list(counts)
    best = max(names, key=lambda name: counts[name].run_accuracy.mean())
    options = dict(delta=delta, alpha=alpha, power=power, single_run=single_run)
    pairs = {}
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            pairs[first, second] = compare_counts(counts[first], counts[second], names=(first, second), **options)
    rows = []
    for name in names:
        if name != best:
            # The pair was compared already where the best arm comes first; else compare it that way.
            comparison = pairs.get((best, name)) or compare_counts(
                counts[best], counts[name], names=(best, name), **options
            )
            comparison = {key: value for key, value in comparison.items() if key != "arms"}
            rows.append({"arm": name, **comparison})
    for question in ("test_set", "distribution"):
        key = f"p_value_{question}"
        adjusted = dict(zip(pairs, holm([pair[key] for pair in pairs.values()])))
        for row in rows:
            row[f"{key}_holm"] = adjusted.get((best, row["arm"]), adjusted.get((row["arm"], best)))
    result = {
        "best": best,
        "alpha": alpha,
        "family": f"Holm over all {len(pairs)} pairs of the {len(names)} arms",
        "arms": {name: arm_summary(arm) for name, arm in counts.items()},
        "comparisons": rows,
        "predicted_spread": sorted({name for row in rows for name in row["predicted_spread"]}),
    }
    result["verdict"] = arms_verdict(result)
    return result


def check_levels(alpha: float, power: float, delta: float | None) -> None:
    if not 0 < alpha < 1:
        raise EstimatorInputError(f"alpha must lie in (0, 1), got {alpha}")
    if not 0 < power < 1:
        raise EstimatorInputError(f"power must lie in (0, 1), got {power}")
    if delta is not None and not (math.isfinite(delta) and delta > 0):
        raise EstimatorInputError(f"delta must be a positive accuracy difference (a fraction), got {delta}")


def _points(value: float) -> str:
    return f"{100 * value:+.2f}"


def _span(interval: list[float]) -> str:
    return f"[{_points(interval[0])}, {_points(interval[1])}]"


def _level(alpha: float) -> str:
    return f"{100 * (1 - alpha):g}%"


_PREDICTION_NOTE = (
    " (the run-to-run variance of {arms} is predicted from the error rate, assuming class-wise calibration"
    " and no excess variance, which fails for short or unstable trainings)"
)


def verdict(result: dict) -> str:
    """One plain sentence: the difference, each interval with the question it answers, the
    conclusion, and what limits it where a question cannot tell."""
    first, second = result["names"]
    alpha = result["alpha"]
    q1 = result["p_value_test_set"] < alpha
    q2 = result["p_value_distribution"] < alpha
    better, worse = (first, second) if result["delta"] > 0 else (second, first)
    n = result["num_examples"]
    plan = result["seeds_needed"]
    text = (
        f"{first} − {second} = {_points(result['delta'])} points; {_level(alpha)} interval "
        f"{_span(result['ci95_test_set'])} on these {n:,} test examples (Q1, p = {result['p_value_test_set']:.2g}) "
        f"and {_span(result['ci95_distribution'])} on the data distribution (Q2, "
        f"p = {result['p_value_distribution']:.2g})"
    )
    if q1 and q2:
        text += f", so {better} is better on this test set and on new data"
    elif q2:
        text += (
            f", so {better} is better on new data; the test-set interval rests on the runs' spread alone, whose"
            " few degrees of freedom make it the wider one here"
        )
    elif q1:
        text += f", so {better} beats {worse} on this test set but is not shown to generalise better: "
        if plan.get("distribution") is None and plan.get("test_examples_needed"):
            text += (
                f"{n:,} test examples, not the number of runs, limit this (no number of runs suffices at a "
                f"{100 * plan['delta']:.2f}-point difference; about {plan['test_examples_needed']:,} examples would)"
            )
        elif plan.get("distribution"):
            text += f"about {plan['distribution']} runs per arm would have {plan['power']:.0%} power for it"
        else:
            text += "there is no difference to plan more runs for"
    else:
        text += f", so neither question tells {first} from {second} at this many runs"
        if plan.get("distribution") is None and plan.get("test_examples_needed"):
            text += f", and on {n:,} test examples no number of runs would at this difference"
    if result.get("predicted_spread"):
        text += _PREDICTION_NOTE.format(arms=" and ".join(result["predicted_spread"]))
    return text + "."


def arms_verdict(result: dict) -> str:
    """One sentence for several arms: the best one and, after Holm's adjustment, which arms are
    worse on the distribution (Q2), worse only on this test set (Q1), or indistinguishable."""
    alpha = result["alpha"]
    rows = result["comparisons"]
    worse_q2 = [row["arm"] for row in rows if row["p_value_distribution_holm"] < alpha]
    worse_q1 = [row["arm"] for row in rows if row["p_value_test_set_holm"] < alpha <= row["p_value_distribution_holm"]]
    tied = [row["arm"] for row in rows if row["arm"] not in worse_q1 + worse_q2]
    best = result["best"]
    parts = [f"best arm {best} ({100 * result['arms'][best]['mean']:.2f}%)"]
    if worse_q2:
        parts.append(f"worse on the data distribution (Q2): {', '.join(worse_q2)}")
    if worse_q1:
        parts.append(f"worse only on this test set (Q1): {', '.join(worse_q1)}")
    if tied:
        parts.append(f"not distinguishable from it: {', '.join(tied)}")
    text = "; ".join(parts) + f" (Holm over all pairs, level {alpha:g})"
    if result.get("predicted_spread"):
        text += _PREDICTION_NOTE.format(arms=" and ".join(result["predicted_spread"]))
    return text + "."


def two_way_bootstrap_variance(
    correct_a: np.ndarray, correct_b: np.ndarray, num_resamples: int = 2000, seed: int = 0
) -> float:
    """An independent cross-check of Var(Δ̂) for Q2: resample runs within each arm and examples,
    the same example indices for both arms, and take the variance of Δ̂ over resamples.

    Resampling both ways counts the run × example interaction three times (in the run means, in the
    example means and on its own) where Var(Δ̂) has it once, so it exceeds `var_distribution` by about
    2·mean_i[p̂_A(1 − p̂_A)/(R_A − 1) + p̂_B(1 − p̂_B)/(R_B − 1)]/n (McCullagh 2000, "resampling and
    exchangeable arrays"); where the examples dominate, that excess is negligible. Costs
    O(num_resamples · R · n).

    Args:
      correct_a, correct_b: [R_A, n] and [R_B, n] 0/1 correctness of each arm's runs.
    """
    correct_a = np.asarray(correct_a, np.float64)
    correct_b = np.asarray(correct_b, np.float64)
    if correct_a.shape[1] != correct_b.shape[1]:
        raise EstimatorInputError("the arms' correctness matrices cover different numbers of examples")
    rng = np.random.default_rng(seed)
    num_examples = correct_a.shape[1]
    deltas = np.empty(num_resamples)
    block = max(1, 2**22 // num_examples)
    for start in range(0, num_resamples, block):
        rows = min(block, num_resamples - start)
        examples = rng.multinomial(num_examples, np.full(num_examples, 1 / num_examples), size=rows)
        runs_a = rng.multinomial(correct_a.shape[0], np.full(correct_a.shape[0], 1 / correct_a.shape[0]), size=rows)
        runs_b = rng.multinomial(correct_b.shape[0], np.full(correct_b.shape[0], 1 / correct_b.shape[0]), size=rows)
        rate_a = runs_a @ correct_a / correct_a.shape[0]
        rate_b = runs_b @ correct_b / correct_b.shape[0]
        deltas[start : start + rows] = ((rate_a - rate_b) * examples).sum(axis=1) / num_examples
    return float(deltas.var(ddof=1))
