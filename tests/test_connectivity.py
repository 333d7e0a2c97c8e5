"""Connectivity: permutation symmetry, alignment, interpolation barriers, BN reset, REPAIR,
instability, and the experiment binary at smoke scale.

Everything shares one smoke-scale experiment (small_cnn ×0.25 on digits, 3 seeds) whose
compiled passes the later tests reuse by keeping the same shapes ([3 pairs, 3 α], batches of 128).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vmaptrain import connectivity as cx
from vmaptrain.config import StudyConfig
from vmaptrain.connectivity import align, experiment, repair
from vmaptrain.connectivity import spec as specs
from vmaptrain.connectivity.evaluate import evaluate
from vmaptrain.data import load_dataset
from vmaptrain.models import REGISTRY, make_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = experiment.SCALES["smoke"]


def perturbed(model, x, seed):
    """Init variables pushed off their init values, so BN statistics and scales matter."""
    variables = jax.jit(lambda: model.init(jax.random.key(seed), x, train=False))()
    flat, tree = jax.tree_util.tree_flatten_with_path(variables)
    rng = np.random.default_rng(seed)  # host noise: no per-shape compilation
    leaves = []
    for path, leaf in flat:
        leaf = np.asarray(leaf)
        name = jax.tree_util.keystr(path)
        if name.endswith("['var']"):
            leaves.append(leaf * rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32))
        elif name.endswith("['scale']"):  # no zero-init γ: dead units would make matches ambiguous
            leaves.append(rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32))
        else:
            leaves.append(leaf + 0.1 * rng.standard_normal(leaf.shape).astype(np.float32))
    return jax.tree.unflatten(tree, leaves)


class PlainCNN(nn.Module):
    """No normalisation at all: REPAIR's other case (VGG-like)."""

    num_classes: int = 10

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.Conv(6, (3, 3), name="conv0")(x))
        x = nn.relu(nn.Conv(8, (3, 3), name="conv1")(x))
        return nn.Dense(self.num_classes, name="head")(jnp.mean(x, axis=(1, 2)))


def _plain_spec(b):
    b.free("P0", 6)
    b.free("P1", 8)
    b.conv("conv0", None, ("P0",))
    b.conv("conv1", ("P0",), ("P1",))
    b.dense("head", ("P1",), None, preact=False)
    b.site("conv0", ("P0",))
    b.site("conv1", ("P1",))


specs.register_spec("PlainCNN", _plain_spec)


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    batches = cx.make_batches(
        data.x_train, data.y_train, data.mean, data.std, count=SMOKE.train_count, batch=SMOKE.batch
    )
    return data, batches


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke-scale experiment, run in-process; its trained variables for later tests."""
    workdir = str(tmp_path_factory.mktemp("connectivity") / "smoke")
    report = experiment.run(workdir, "smoke")
    config = StudyConfig(**{**SMOKE.study, "width": SMOKE.widths[0]})
    variables, result = experiment.study_variables(config, os.path.join(workdir, "study_w0.25"))
    return workdir, report, variables, result.spec.model


@functools.cache
def registry_case(name):
    """A registry model with perturbed variables, its spec and jitted apply / permute (shared)."""
    size = 16 if name in ("resnet9_paper", "airbench94") else 8
    x = jnp.asarray(np.random.default_rng(1).standard_normal((16, size, size, 1)), jnp.float32)
    model = make_model(name, 10, 0.5, np.asarray(x))
    variables = perturbed(model, x, 0)
    spec = cx.spec_for(model, variables)
    apply = jax.jit(lambda v: model.apply(v, x, train=False))
    permute = jax.jit(lambda v, p: cx.permute(spec, v, p))
    return model, x, variables, spec, apply, permute


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_random_permutation_leaves_the_logits_unchanged(name):
    model, x, variables, spec, apply, permute = registry_case(name)
    perms = specs.random_perms(spec, np.random.default_rng(0))
    assert any(not np.array_equal(p, np.arange(len(p))) for p in perms.values())
    permuted = permute(variables, perms)
    assert not np.allclose(permuted["params"]["head"]["kernel"], variables["params"]["head"]["kernel"])
    before, after = apply(variables), apply(permuted)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5 * float(jnp.abs(before).max()))


def test_a_model_without_batchnorm_permutes_too():
    model = PlainCNN()
    x = jax.random.normal(jax.random.key(1), (4, 8, 8, 1))
    variables = model.init(jax.random.key(0), x)
    spec = cx.spec_for(model, variables)
    permuted = cx.permute(spec, variables, specs.random_perms(spec, np.random.default_rng(1)))
    np.testing.assert_allclose(model.apply(permuted, x), model.apply(variables, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["activation", "weight"])
def test_alignment_recovers_a_planted_permutation(method):
    # resnet14_sd: residual streams whose zero-padded shortcut forces multi-block labels.
    model, x, variables, spec, _, permute = registry_case("resnet14_sd")
    planted = specs.random_perms(spec, np.random.default_rng(2))
    permuted = permute(variables, planted)
    if method == "activation":
        stack = lambda v: jax.tree.map(lambda t: t[None], v)
        found = align.activation_matching(model, spec, stack(variables), stack(permuted), [x, -x, 2 * x + 0.5])[0]
    else:
        found = align.weight_matching(spec, variables["params"], permuted["params"])
    for name, perm in planted.items():
        # Aligning π(A) back onto A must find π's inverse, exactly.
        np.testing.assert_array_equal(found[name], np.argsort(perm), err_msg=name)


def test_barrier_variants_on_a_known_curve():
    alphas = cx.alpha_grid(5)
    curve = np.asarray([1.0, 2.0, 4.0, 2.5, 3.0])
    b = cx.barriers(curve, alphas)
    assert b["max_minus_mean"] == pytest.approx(4.0 - 2.0)
    assert b["max_gap_to_line"] == pytest.approx(4.0 - 2.0)
    assert b["midpoint"] == pytest.approx(2.0)
    acc = cx.barriers(np.asarray([0.9, 0.8, 0.5, 0.85, 0.7]), alphas, higher_is_worse=False)
    assert acc["midpoint"] == pytest.approx(0.8 - 0.5)
    assert acc["max_gap_to_line"] == pytest.approx(0.8 - 0.5)


def test_a_network_interpolated_with_itself_has_no_barrier(smoke, digits):
    _, _, variables, model = smoke
    _, train = digits
    same = [(0, 0), (1, 1), (2, 2)]
    vars_a, vars_b = cx.gather_pairs(variables, same)
    out = cx.compare(model, vars_a, vars_b, train, train, SMOKE.alphas, conditions=("naive", "aligned"), pair_chunk=3)
    for perms in out["perms"]:  # a network's best match to itself is itself
        for _name, perm in perms.items():
            np.testing.assert_array_equal(perm, np.arange(len(perm)))
    for cond in ("naive", "aligned"):
        for metric, by_variant in out["barriers"][cond].items():
            for variant, values in by_variant.items():
                tolerance = 0.0 if metric.endswith("acc") else 1e-5
                assert np.all(np.abs(values) <= tolerance), (cond, metric, variant, values)


def _interpolated(smoke):
    _, _, variables, model = smoke
    vars_a, vars_b = cx.gather_pairs(variables, [(0, 1), (0, 2), (1, 2)])
    return (
        model,
        vars_a,
        vars_b,
        jax.vmap(cx.lerp_grid, in_axes=(0, 0, None))(
            vars_a, vars_b, jnp.asarray(cx.alpha_grid(SMOKE.alphas), jnp.float32)
        ),
    )


def test_bn_reset_restores_the_true_statistics_of_the_interpolated_network(smoke, digits):
    model, _, _, nets = _interpolated(smoke)
    _, train = digits
    batch = train[:1]
    reset = repair.reset_bn(model, nets, batch)
    spec = cx.spec_for(model, jax.tree.map(lambda t: t[0, 0], nets))
    # The BN inputs (conv outputs) of the reset network, measured in eval mode.
    measured = evaluate(model, reset, batch, stat_sites=spec.preact)["stats"]
    x = batch[0][0]
    for p in range(3):
        for a in range(3):
            net = jax.tree.map(lambda t: t[p, a], nets)
            fixed = jax.tree.map(lambda t: t[p, a], reset)
            for i, site in enumerate(spec.preact):
                stats = fixed["batch_stats"][f"bn{i}"]
                np.testing.assert_allclose(stats["mean"], measured[site][0][p, a], rtol=1e-4, atol=1e-5)
                np.testing.assert_allclose(stats["var"], measured[site][1][p, a], rtol=1e-4, atol=1e-6)
            # Eval mode with the reset statistics ≡ train-mode BN (the interpolated net's own).
            train_mode, _ = model.apply(net, x, train=True, mutable=["batch_stats"])
            np.testing.assert_allclose(
                model.apply(fixed, x, train=False), train_mode, rtol=1e-4, atol=1e-4 * float(jnp.abs(train_mode).max())
            )


def _check_repair(model, nets, batch, sites, alphas):
    ends = evaluate(model, jax.tree.map(lambda t: t[:, [0, -1]], nets), batch, stat_sites=sites)["stats"]
    goals = repair.goals_from_endpoints(
        {s: (m[:, 0], v[:, 0]) for s, (m, v) in ends.items()},
        {s: (m[:, 1], v[:, 1]) for s, (m, v) in ends.items()},
        alphas,
    )
    correct = repair.repair(model, nets, goals, batch)
    after = evaluate(model, nets, batch, stat_sites=sites, correct=correct)
    for site in sites:
        mu_goal, sigma_goal = (np.asarray(g) for g in goals[site])
        mean, var = after["stats"][site]
        scale = np.abs(sigma_goal).max()
        np.testing.assert_allclose(mean, mu_goal, atol=2e-3 * scale, err_msg=site)
        np.testing.assert_allclose(np.sqrt(var), sigma_goal, rtol=2e-3, atol=2e-3 * scale, err_msg=site)
    # α-weighted goals: REPAIR is the identity at the endpoints.
    plain = evaluate(model, nets, batch)
    np.testing.assert_allclose(after["loss"][:, [0, -1]], plain["loss"][:, [0, -1]], rtol=1e-3, atol=1e-4)
    return after


def test_repair_gives_every_corrected_channel_its_goal_statistics(smoke, digits):
    model, _, _, nets = _interpolated(smoke)
    _, train = digits
    spec = cx.spec_for(model, jax.tree.map(lambda t: t[0, 0], nets))
    _check_repair(model, nets, train[:1], spec.preact, cx.alpha_grid(SMOKE.alphas))


def test_repair_works_without_batchnorm(digits):
    model = PlainCNN()
    _, train = digits
    x = train[0][0]
    a, b = (jax.tree.map(lambda t: t[None], model.init(jax.random.key(s), x)) for s in (0, 1))
    alphas = cx.alpha_grid(5)
    nets = jax.vmap(cx.lerp_grid, in_axes=(0, 0, None))(a, b, jnp.asarray(alphas, jnp.float32))
    spec = cx.spec_for(model, jax.tree.map(lambda t: t[0], a))
    assert spec.preact == ("conv0", "conv1") and spec.bn == ()
    before = evaluate(model, nets, train[:1], stat_sites=spec.preact)
    collapse = repair.variance_ratio(before["stats"], spec.preact, alphas)
    assert np.all(collapse[:, 2] < 1.0)  # two independent nets: the midpoint's variance collapses
    after = _check_repair(model, nets, train[:1], spec.preact, alphas)
    # Layer variance now follows the interpolated stds (≤ the interpolated variances, Jensen).
    repaired = repair.variance_ratio(after["stats"], spec.preact, alphas)
    assert np.all(repaired[:, 2] > collapse[:, 2]) and np.all(repaired <= 1.0 + 1e-3)


def test_smoke_report_has_every_result_and_its_invariants(smoke):
    workdir, report, _, _ = smoke
    assert report["alphas"] == [0.0, 0.5, 1.0]
    assert set(report["barrier_variants"]) == {"max_minus_mean", "max_gap_to_line", "midpoint"}
    entry = report["widths"]["0.25"]
    assert entry["pairs"] == [[0, 1], [0, 2], [1, 2]]
    assert set(entry["curves"]) == set(SMOKE.conditions)
    for cond, by_metric in entry["curves"].items():
        assert set(by_metric) == {"train_loss", "train_acc", "test_loss", "test_acc"}
        for values in by_metric.values():
            values = np.asarray(values)
            assert values.shape == (3, 3) and np.all(np.isfinite(values))
        for _metric, by_variant in entry["barriers"][cond].items():
            for values in by_variant.values():
                assert len(values) == 3 and np.all(np.isfinite(values))
    # Alignment does not move the endpoints (π(B) is B).
    naive, aligned = (
        np.asarray(entry["curves"]["naive"]["test_acc"]),
        np.asarray(entry["curves"]["aligned"]["test_acc"]),
    )
    np.testing.assert_allclose(naive[:, [0, -1]], aligned[:, [0, -1]], atol=1 / 256 + 1e-9)
    assert max(entry["perm_max_abs_logit_diff"]) < 1e-3
    for by_metric in entry["reduction"].values():
        for by_variant in by_metric.values():
            for values in by_variant.values():
                v = np.asarray(values, np.float64)
                assert np.all(np.isnan(v) | (v <= 1.0))
    assert np.allclose(entry["variance_ratio_midpoint"]["aligned_repair"], 1.0, atol=0.05)
    inst = report["instability"]
    assert inst["spawn_steps"] == [0, 5, 11] and inst["total_steps"] == 11
    final = inst["by_step"]["11"]["barriers"]  # spawned at the end: identical children
    assert all(np.all(np.asarray(v) == 0) for by_variant in final.values() for v in by_variant.values())
    for name in (
        "connectivity_curves.png",
        "connectivity_barrier_vs_width.png",
        "connectivity_variance.png",
        "connectivity_instability.png",
    ):
        with open(os.path.join(workdir, name), "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(workdir, "report.json")) as handle:
        assert json.load(handle)["widths"].keys() == report["widths"].keys()
    mtime = os.path.getmtime(os.path.join(workdir, "report.json"))
    assert experiment.run(workdir, "smoke") == report  # resumed: read back, nothing recomputed
    assert os.path.getmtime(os.path.join(workdir, "report.json")) == mtime


def test_bad_input_raises_one_clear_error():
    with pytest.raises(cx.ConnectivityError, match="odd number"):
        cx.alpha_grid(4)
    with pytest.raises(cx.ConnectivityError, match="odd number"):
        cx.alpha_grid([0.0, 0.3, 0.7, 1.0])
    with pytest.raises(cx.ConnectivityError, match="contain ½"):
        cx.alpha_grid([0.0, 0.4, 1.0])
    with pytest.raises(cx.ConnectivityError, match="out of range for 3 runs"):
        cx.check_pairs(3, [(0, 3)])
    x = jnp.zeros((1, 8, 8, 1))
    small, wide = (
        jax.eval_shape(lambda: make_model("small_cnn", 10, w).init(jax.random.key(0), x, train=False))
        for w in (0.25, 0.5)
    )
    with pytest.raises(cx.ConnectivityError, match="different models"):
        cx.pairs.check_same_model(small, wide)
    assert issubclass(cx.ConnectivityError, ValueError)


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--pairs=0-1,0-7", "error: pair (0, 7): run index 7 is out of range for 3 runs"),
        ("--alphas=0,0.25,1", "error: the α grid must contain ½ (the midpoint barrier is read there)"),
    ],
)
def test_the_binary_turns_bad_input_into_one_error_line(tmp_path, flag, message):
    cmd = [
        sys.executable,
        os.path.join(REPO, "experiments", "connectivity.py"),
        f"--workdir={tmp_path / 'w'}",
        "--scale=smoke",
        flag,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [message]
    assert not (tmp_path / "w").exists()  # refused before any work
