"""vmaptrain.compare: hand-computed values, the two-way bootstrap, interval coverage, seed planning
and Holm's adjustment (docs/comparison.md).

The Monte Carlo tests use the synthetic world of docs/comparison.md §6: example easiness a_i shared
by both configurations, an example-specific effect e_i of B, a latent quality z_r per run, and
P(correct) = sigmoid(a_i + b·z_r) for A, sigmoid(a_i + shift + e_i + b·z_r) for B. Δ and Var_x(d)
come from Gauss–Hermite quadrature over a, e and z.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

import vmaptrain
from vmaptrain.estimators import EstimatorInputError
from vmaptrain.estimators.comparison import (
    compare,
    compare_arms,
    count_correct,
    holm,
    seeds_needed,
    two_way_bootstrap_variance,
    verdict,
)

NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(48)  # ∫ f(x) φ(x) dx ≈ Σ w f(x)
WEIGHTS = WEIGHTS / WEIGHTS.sum()


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@dataclasses.dataclass(frozen=True)
class World:
    """Two configurations that share example easiness; B shifts it and adds its own per-example effect."""

    easiness_mean: float = 1.5
    easiness_sd: float = 1.5
    shift: float = -0.1
    effect_sd: float = 0.3
    run_effect: float = 1.0

    def p_correct(self, logit: np.ndarray) -> np.ndarray:
        """E_z sigmoid(logit + b·z): a fresh run's probability of being right."""
        return (_sigmoid(np.asarray(logit)[..., None] + self.run_effect * NODES) * WEIGHTS).sum(-1)

    def _grid(self):
        a = self.easiness_mean + self.easiness_sd * NODES[:, None]
        e = self.effect_sd * NODES[None, :]
        d = self.p_correct(a) - self.p_correct(a + self.shift + e)
        return d, WEIGHTS[:, None] * WEIGHTS[None, :]

    @property
    def delta(self) -> float:
        d, w = self._grid()
        return float((d * w).sum())

    @property
    def var_x_d(self) -> float:
        d, w = self._grid()
        return float((d**2 * w).sum() - (d * w).sum() ** 2)

    def run_variance(self, num_examples: int, arm: str) -> float:
        """Var of one run's accuracy on a test set of n examples (the test set held fixed, averaged
        over test sets): the run effect's share Var_z of the expected accuracy, plus the binomial
        share E[σ(1 − σ)]/n (Var_a(σ | z)/n is left out: it moves the test set, not the runs)."""
        sd = self.easiness_sd if arm == "a" else math.hypot(self.easiness_sd, self.effect_sd)
        mean = self.easiness_mean + (0.0 if arm == "a" else self.shift)
        logit = mean + sd * NODES[:, None] + self.run_effect * NODES[None, :]
        p = _sigmoid(logit)
        by_run = (p * WEIGHTS[:, None]).sum(0)
        run_share = (by_run**2 * WEIGHTS).sum() - ((by_run * WEIGHTS).sum()) ** 2
        binomial = (p * (1 - p) * WEIGHTS[:, None] * WEIGHTS[None, :]).sum()
        return float(run_share + binomial / num_examples)

    def draw_examples(self, rng, num_examples: int):
        return (
            self.easiness_mean + self.easiness_sd * rng.standard_normal(num_examples),
            self.effect_sd * rng.standard_normal(num_examples),
        )

    def draw_correct(self, rng, examples, runs_a: int, runs_b: int):
        easiness, effect = examples
        z_a = self.run_effect * rng.standard_normal(runs_a)
        z_b = self.run_effect * rng.standard_normal(runs_b)
        correct_a = rng.random((runs_a, easiness.size)) < _sigmoid(easiness[None] + z_a[:, None])
        correct_b = rng.random((runs_b, easiness.size)) < _sigmoid(
            (easiness + self.shift + effect)[None] + z_b[:, None]
        )
        return correct_a, correct_b


def as_predictions(correct: np.ndarray, labels: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """Predictions that are right exactly where `correct` says (wrong ones: the next class)."""
    return np.where(correct, labels[None], (labels[None] + 1) % num_classes).astype(np.int16)


def _compare_correct(correct_a, correct_b, **kwargs) -> dict:
    labels = np.zeros(correct_a.shape[1], np.int32)
    return compare(
        labels, a=as_predictions(correct_a, labels), b=as_predictions(correct_b, labels), num_classes=10, **kwargs
    )


# --- hand-computed values -------------------------------------------------------------------------------------


def test_hand_computed_negative_example_variance_is_reported_signed_and_clipped():
    # A: per-run accuracies 3/4, 1/2, 1 (mean 3/4, s² 1/16); B: 1/4, 1/2 (mean 3/8, s² 1/32).
    correct_a = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], bool)
    correct_b = np.array([[1, 0, 0, 0], [1, 1, 0, 0]], bool)
    result = _compare_correct(correct_a, correct_b, single_run=False)
    var_test = Fraction(1, 16) / 3 + Fraction(1, 32) / 2
    # d̂ = p̂_A − p̂_B = (0, 1/2, 2/3, 1/3): S² = 35/432; noise 1/18 (A) and 1/16 (B) → −1/27.
    assert result["delta"] == pytest.approx(3 / 8)
    assert result["var_test_set"] == pytest.approx(float(var_test))
    assert result["var_x_d"] == pytest.approx(-1 / 27)
    assert result["var_distribution"] == pytest.approx(float(var_test))  # clipped at 0 only here
    df = float(var_test**2 / ((Fraction(1, 48)) ** 2 / 2 + (Fraction(1, 64)) ** 2 / 1))
    assert result["degrees_of_freedom_test_set"] == pytest.approx(df)
    assert result["degrees_of_freedom_distribution"] == pytest.approx(df)  # no example part to add
    half = stats.t.ppf(0.975, df) * math.sqrt(float(var_test))
    assert result["ci95_test_set"] == pytest.approx([3 / 8 - half, 3 / 8 + half])
    assert result["p_value_test_set"] == pytest.approx(2 * stats.t.sf(0.375 / math.sqrt(float(var_test)), df))
    # Pairs (a, b) of runs: A's 3/4, 1/2, 1 against B's 1/4, 1/2 → 1 + 1 + ½ + 1 + 1 + 1 = 5.5 of 6.
    assert result["prob_a_beats_b"] == pytest.approx(5.5 / 6)
    assert result["arms"]["A"]["mean"] == pytest.approx(0.75)
    assert result["arms"]["A"]["std"] == pytest.approx(0.25)
    assert result["arms"]["B"]["runs"] == 2


def test_hand_computed_positive_example_variance():
    # Same accuracies in both arms (Δ = 0), but on different examples: d̂ = (1/2, 1, −1, −1/2).
    correct_a = np.array([[1, 1, 0, 0], [1, 1, 0, 1]], bool)
    correct_b = np.array([[0, 0, 1, 1], [1, 0, 1, 1]], bool)
    result = _compare_correct(correct_a, correct_b)
    # S² = 5/6, noise 1/16 per arm → Var_x(d) = 17/24; V_test = 1/32 → V_dist = 1/32 + (17/24)/4 = 5/24.
    assert result["delta"] == 0
    assert result["var_x_d"] == pytest.approx(17 / 24)
    assert result["var_test_set"] == pytest.approx(1 / 32)
    assert result["var_distribution"] == pytest.approx(5 / 24)
    assert result["degrees_of_freedom_test_set"] == pytest.approx(2.0)
    # Q2's Satterthwaite degrees of freedom add Var_x(d)/n with its n − 1 = 3.
    df = (5 / 24) ** 2 / (2 * (1 / 64) ** 2 / 1 + (17 / 96) ** 2 / 3)
    assert result["degrees_of_freedom_distribution"] == pytest.approx(df)
    half = stats.t.ppf(0.975, df) * math.sqrt(5 / 24)
    assert result["ci95_distribution"] == pytest.approx([-half, half])
    assert result["p_value_test_set"] == 1.0 and result["p_value_distribution"] == 1.0
    assert result["prob_a_beats_b"] == 0.5
    assert "neither question" in result["verdict"]


def test_logits_and_predictions_give_the_same_comparison_and_output_is_json():
    import json

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 50).astype(np.int32)
    logits_a = rng.standard_normal((4, 50, 5)).astype(np.float32)
    logits_b = rng.standard_normal((3, 50, 5)).astype(np.float16)
    from_logits = vmaptrain.compare(labels, a=logits_a, b=logits_b)
    from_predictions = compare(labels, a=logits_a.argmax(-1), b=logits_b.argmax(-1), num_classes=5)
    assert json.loads(json.dumps(from_logits, allow_nan=False)) == from_logits
    for key in ("delta", "var_test_set", "var_x_d", "var_distribution", "ci95_distribution", "p_value_distribution"):
        assert from_logits[key] == pytest.approx(from_predictions[key])
    jax_arm = compare(labels, a=__import__("jax").numpy.asarray(logits_a), b=logits_b)
    assert jax_arm["delta"] == from_logits["delta"]


def test_normal_quantile_from_thirty_runs_per_arm():
    rng = np.random.default_rng(1)
    world = World()
    correct_a, correct_b = world.draw_correct(rng, world.draw_examples(rng, 200), 30, 30)
    result = _compare_correct(correct_a, correct_b)
    assert result["degrees_of_freedom_test_set"] is None and result["degrees_of_freedom_distribution"] is None
    half = stats.norm.ppf(0.975) * math.sqrt(result["var_distribution"])
    assert result["ci95_distribution"][1] - result["delta"] == pytest.approx(half)


def test_single_run_per_arm_uses_the_a_priori_prediction_and_says_so():
    correct_a = np.array([[1] * 90 + [0] * 10], bool)
    correct_b = np.array([[1] * 80 + [0] * 20], bool)
    with pytest.raises(EstimatorInputError, match="single_run"):
        _compare_correct(correct_a, correct_b)
    result = _compare_correct(correct_a, correct_b, single_run=True)
    n = 100
    predicted = 0.1 / (2 * n) + 0.2 / (2 * n)  # err/(2n) per arm, Theorem 3's form
    assert result["predicted_spread"] == ["A", "B"]
    assert result["var_test_set"] == pytest.approx(predicted)
    # One run each: S²(d̂)/n is the whole variance of Δ̂ under independent errors.
    d = correct_a[0].astype(float) - correct_b[0]
    assert result["var_distribution"] == pytest.approx(max(d.var(ddof=1) / n, predicted))
    assert result["arms"]["A"]["std"] is None
    assert result["arms"]["A"]["predicted_std"] == pytest.approx(math.sqrt(0.1 / (2 * n)))
    assert result["arms"]["A"]["predicted_std_lower_bound"] == pytest.approx(math.sqrt(0.1 / (n * 10)))
    assert "predicted" in result["verdict"] and "short or unstable" in result["verdict"]


def test_runs_that_all_score_the_same_take_the_prediction_not_certainty():
    # Two runs per arm, each arm's runs at one accuracy: a sample variance of 0 would make p = 0.
    correct_a = np.array([[1] * 80 + [0] * 20, [0] * 20 + [1] * 80], bool)
    correct_b = np.array([[1] * 79 + [0] * 21, [0] * 21 + [1] * 79], bool)
    result = _compare_correct(correct_a, correct_b)
    assert result["predicted_spread"] == ["A", "B"]
    assert result["var_test_set"] == pytest.approx((0.2 / 200 + 0.21 / 200) / 2)
    assert result["p_value_test_set"] > 0.5 and result["ci95_test_set"][0] < 0 < result["ci95_test_set"][1]


def test_mixed_arms_take_t_quantiles_from_the_sampled_arm_alone():
    rng = np.random.default_rng(9)
    correct_a, correct_b = World().draw_correct(rng, World().draw_examples(rng, 300), 1, 4)
    result = _compare_correct(correct_a, correct_b, single_run=True)
    assert result["predicted_spread"] == ["A"]
    # Satterthwaite over B's sampled part alone (3 degrees of freedom); A's predicted part is known.
    known = (1 - correct_a.mean()) / (2 * 300)
    sampled = correct_b.mean(1).var(ddof=1) / 4
    assert result["degrees_of_freedom_test_set"] == pytest.approx((known + sampled) ** 2 / (sampled**2 / 3))


# --- the two-way bootstrap --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "world, runs, num_examples",
    [
        (World(effect_sd=1.5, run_effect=0.1), 40, 800),  # examples dominate
        (World(effect_sd=0.3, run_effect=1.0), 12, 400),  # runs dominate
    ],
)
def test_analytic_distribution_variance_agrees_with_a_two_way_bootstrap(world, runs, num_examples):
    rng = np.random.default_rng(2)
    correct_a, correct_b = world.draw_correct(rng, world.draw_examples(rng, num_examples), runs, runs)
    result = _compare_correct(correct_a, correct_b)
    resamples = 4000
    bootstrap = two_way_bootstrap_variance(correct_a, correct_b, num_resamples=resamples, seed=3)
    # The bootstrap counts the run × example interaction three times (once in the run means, once in
    # the example means, once on its own) where Δ̂'s variance has it once: add the known excess of two.
    rate_a, rate_b = correct_a.mean(0), correct_b.mean(0)
    noise = np.mean(rate_a * (1 - rate_a)) / (runs - 1) + np.mean(rate_b * (1 - rate_b)) / (runs - 1)
    excess = 2 * noise / num_examples
    monte_carlo_se = bootstrap * math.sqrt(2 / (resamples - 1))
    assert abs(bootstrap - (result["var_distribution"] + excess)) < 4 * monte_carlo_se


# --- coverage of the intervals (docs/comparison.md §6) ---------------------------------------------------------


def _coverage(world: World, runs: int, num_examples: int, replicates: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    labels = np.zeros(num_examples, np.int32)
    hits = np.zeros(2)
    for _ in range(replicates):
        correct_a, correct_b = world.draw_correct(rng, world.draw_examples(rng, num_examples), runs, runs)
        result = compare(labels, a=as_predictions(correct_a, labels), b=as_predictions(correct_b, labels))
        for j, key in enumerate(("ci95_test_set", "ci95_distribution")):
            low, high = result[key]
            hits[j] += low <= world.delta <= high
    return tuple(hits / replicates)


def test_distribution_interval_covers_when_runs_dominate():
    test_set, distribution = _coverage(
        World(effect_sd=0.3, run_effect=1.0), runs=10, num_examples=300, replicates=600, seed=4
    )
    assert 0.93 <= distribution <= 0.97


def test_distribution_interval_covers_where_the_test_set_interval_does_not():
    world = World(effect_sd=1.5, run_effect=0.02)
    test_set, distribution = _coverage(world, runs=64, num_examples=1500, replicates=600, seed=5)
    assert 0.93 <= distribution <= 0.97
    assert test_set < 0.80  # Q1's interval answers another question: it misses Δ often


# --- seed planning ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shift, many_runs",
    [(-0.12, True), (-1.0, False)],  # normal quantiles (R ≥ 30), and Student-t ones (a handful of runs)
)
def test_planned_runs_reach_the_planned_power_on_a_fixed_test_set(shift, many_runs):
    world = World(effect_sd=0.3, run_effect=0.6, shift=shift)
    rng = np.random.default_rng(6)
    examples = world.draw_examples(rng, 600)
    easiness, effect = examples
    target = float(np.mean(world.p_correct(easiness) - world.p_correct(easiness + world.shift + effect)))
    # s² on this fixed test set: Var_z of its expected accuracy plus the binomial share.
    variances = []
    for logit in (easiness, easiness + world.shift + effect):
        p = _sigmoid(logit[:, None] + world.run_effect * NODES[None, :])
        by_run = p.mean(0)
        variances.append(
            (by_run**2 * WEIGHTS).sum()
            - (by_run * WEIGHTS).sum() ** 2
            + (p * (1 - p) * WEIGHTS).sum(1).mean() / p.shape[0]
        )
    plan = seeds_needed(variances[0], variances[1], 0.0, easiness.size, abs(target), alpha=0.05, power=0.8)
    runs = plan["test_set"]
    assert (runs >= 30) if many_runs else (3 <= runs <= 12), runs
    labels = np.zeros(easiness.size, np.int32)
    rejections = []
    for _ in range(500):
        correct_a, correct_b = world.draw_correct(rng, examples, runs, runs)
        result = compare(labels, a=as_predictions(correct_a, labels), b=as_predictions(correct_b, labels))
        rejections.append(result["p_value_test_set"] < 0.05)
    assert abs(np.mean(rejections) - 0.8) <= 0.05


def test_planned_runs_reach_the_planned_power_on_the_distribution():
    world = World(effect_sd=0.6, run_effect=0.6, shift=-0.2)
    num_examples = 800
    plan = seeds_needed(
        world.run_variance(num_examples, "a"),
        world.run_variance(num_examples, "b"),
        world.var_x_d,
        num_examples,
        abs(world.delta),
        alpha=0.05,
        power=0.8,
    )
    runs = plan["distribution"]
    assert runs is not None and runs >= 30
    rng = np.random.default_rng(7)
    labels = np.zeros(num_examples, np.int32)
    rejections = []
    for _ in range(500):
        correct_a, correct_b = world.draw_correct(rng, world.draw_examples(rng, num_examples), runs, runs)
        result = compare(labels, a=as_predictions(correct_a, labels), b=as_predictions(correct_b, labels))
        rejections.append(result["p_value_distribution"] < 0.05)
    assert abs(np.mean(rejections) - 0.8) <= 0.05


def test_no_number_of_runs_suffices_when_the_test_set_is_too_small():
    plan = seeds_needed(1e-4, 1e-4, 0.04, 1000, 0.005, alpha=0.05, power=0.8)
    k = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) ** 2
    assert plan["distribution"] is None
    needed = plan["test_examples_needed"]
    assert needed == math.floor(k * 0.04 / 0.005**2) + 1
    assert plan["test_set"] == math.ceil(k * 2e-4 / 0.005**2)  # ≥ 30 runs: normal quantiles
    # At twice that test set, s² shrinks with 1/n and the planner, asked there, agrees.
    scale = 1000 / (2 * needed)
    at_twice = seeds_needed(1e-4 * scale, 1e-4 * scale, 0.04, 2 * needed, 0.005, alpha=0.05, power=0.8)
    assert plan["distribution_at_twice_that"] == pytest.approx(at_twice["distribution"], abs=1)


# --- several arms ----------------------------------------------------------------------------------------------


def test_holm_on_known_p_values():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001, 0.2]) == pytest.approx([0.5, 0.003, 0.4])


def test_three_arms_against_the_best_are_holm_adjusted_over_all_pairs():
    rng = np.random.default_rng(8)
    labels = np.zeros(400, np.int32)
    examples = World().draw_examples(rng, 400)
    arms = {}
    for name, shift in (("lr=0.1", 0.0), ("lr=0.2", -0.05), ("lr=0.4", -0.3), ("lr=0.8", -1.0)):
        world = World(shift=shift, effect_sd=0.0, run_effect=0.3)
        _, correct_b = world.draw_correct(rng, examples, 2, 8)
        arms[name] = as_predictions(correct_b, labels)
    result = compare_arms(labels, arms)
    assert result["best"] == "lr=0.1"
    rows = {row["arm"]: row for row in result["comparisons"]}
    assert sorted(rows) == ["lr=0.2", "lr=0.4", "lr=0.8"]
    # The family is all six pairs (the best was chosen from the data): recompute it by hand.
    names = list(arms)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    for question in ("test_set", "distribution"):
        raw = [compare(labels, a=arms[a], b=arms[b])[f"p_value_{question}"] for a, b in pairs]
        adjusted = dict(zip(pairs, holm(raw)))
        for name in rows:
            assert rows[name][f"p_value_{question}_holm"] == pytest.approx(adjusted["lr=0.1", name])
    assert set(result["arms"]) == set(arms)
    assert all("distribution_std" in summary for summary in result["arms"].values())
    worse = result["verdict"].split("worse on the data distribution (Q2): ")[1].split(";")[0]
    assert "lr=0.8" in worse and "lr=0.2" not in worse
    assert "not distinguishable from it: lr=0.2" in result["verdict"]


def test_arm_names_need_not_be_strings_and_runs_can_be_selected():
    labels = np.zeros(6, np.int32)
    predictions = np.array([[0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1], [0, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1]])
    result = compare_arms(labels, {0.1: predictions[:2], 0.2: predictions[2:]})
    assert result["best"] == "0.1"
    selected = count_correct(labels, predictions, runs=[3, 0])
    assert selected.run_correct.tolist() == [5, 3]


def test_verdict_names_what_limits_a_test_set_only_difference():
    base = {
        "names": ["A", "B"],
        "alpha": 0.05,
        "num_examples": 1000,
        "delta": 0.01,
        "ci95_test_set": [0.005, 0.015],
        "ci95_distribution": [-0.002, 0.022],
        "p_value_test_set": 0.001,
        "p_value_distribution": 0.1,
        "predicted_spread": [],
    }
    limited = verdict(
        {**base, "seeds_needed": {"delta": 0.01, "power": 0.8, "distribution": None, "test_examples_needed": 5000}}
    )
    assert "not the number of runs" in limited and "5,000" in limited
    more_runs = verdict(
        {**base, "seeds_needed": {"delta": 0.01, "power": 0.8, "distribution": 40, "test_examples_needed": None}}
    )
    assert "40 runs per arm" in more_runs and "not the number of runs" not in more_runs
    q2_only = verdict({**base, "p_value_test_set": 0.07, "p_value_distribution": 0.04, "seeds_needed": {}})
    assert "better on new data" in q2_only


# --- bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, kwargs, message",
    [
        (np.zeros((3, 5), np.int32), np.zeros((3, 6), np.int32), {}, "6 examples"),
        (np.zeros((3, 5, 4), np.float32), np.zeros((3, 5, 3), np.float32), {}, "classes"),
        (np.full((3, 5, 4), np.nan, np.float32), np.zeros((3, 5, 4), np.float32), {}, "NaN"),
        (np.zeros((3, 5), np.float32), np.zeros((3, 5), np.int32), {}, "integer"),
        (np.zeros((5,), np.int32), np.zeros((3, 5), np.int32), {}, "shape"),
        (np.zeros((3, 5), np.int32), np.zeros((3, 5), np.int32), {"alpha": 1.5}, "alpha"),
        (np.zeros((3, 5), np.int32), np.zeros((3, 5), np.int32), {"delta": -0.1}, "delta"),
        (np.full((3, 5), -1, np.int32), np.zeros((3, 5), np.int32), {}, "out of range"),
    ],
)
def test_bad_input_is_one_clear_error(a, b, kwargs, message):
    with pytest.raises(EstimatorInputError, match=message):
        compare(np.zeros(5, np.int32), a=a, b=b, **kwargs)


def test_one_arm_is_not_a_comparison():
    with pytest.raises(EstimatorInputError, match="two arms"):
        compare_arms(np.zeros(5, np.int32), {"only": np.zeros((3, 5), np.int32)})
