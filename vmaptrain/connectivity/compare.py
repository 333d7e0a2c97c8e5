"""Interpolation curves between pairs of runs under each condition, and their barriers.

Conditions (all on the same α grid; barriers of "aligned*" are the ones REPAIR reports):

* naive            θ(α) between A and B as trained
* naive_reset      the same with BatchNorm statistics recomputed (optional; REPAIR: no help)
* aligned          B's units permuted onto A's first
* aligned_reset    aligned + BatchNorm statistics recomputed for θ(α)
* aligned_repair   aligned + REPAIR on every preactivation (BN statistics left interpolated)
* wm_aligned[_reset]  the same two with weight matching instead of `method` (a second aligner)
"""

from __future__ import annotations

import sys
import time

import jax
import numpy as np

from vmaptrain.connectivity import align, repair
from vmaptrain.connectivity.errors import ConnectivityError
from vmaptrain.connectivity.evaluate import evaluate
from vmaptrain.connectivity.interpolate import alpha_grid, barriers, lerp_grid, relative_reduction
from vmaptrain.connectivity.pairs import check_same_model
from vmaptrain.connectivity.spec import permute, spec_for

CONDITIONS = ("naive", "naive_reset", "aligned", "aligned_reset", "aligned_repair", "wm_aligned", "wm_aligned_reset")
DEFAULT_CONDITIONS = ("naive", "aligned", "aligned_reset", "aligned_repair")
METHODS = ("activation", "weight")
METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")

_lerp_pairs = jax.jit(jax.vmap(lerp_grid, in_axes=(0, 0, None)))


def align_pairs(model, spec, vars_a, vars_b, batches, method: str) -> list[dict]:
    if method == "activation":
        return align.activation_matching(model, spec, vars_a, vars_b, [x for x, _ in batches])
    if method == "weight":
        pairs = jax.tree.leaves(vars_a)[0].shape[0]
        return [
            align.weight_matching(
                spec, jax.tree.map(lambda t: t[p], vars_a["params"]), jax.tree.map(lambda t: t[p], vars_b["params"])
            )
            for p in range(pairs)
        ]
    raise ConnectivityError(f"unknown alignment method '{method}'; choose from {', '.join(METHODS)}")


def _permute_pairs(spec, vars_b, perm_sets):
    stacked = align.stack_perms(perm_sets)
    return jax.jit(jax.vmap(lambda v, p: permute(spec, v, p)))(vars_b, stacked)


def _chunk(model, spec, vars_a, vars_b, alphas, train, test, method, conditions, log):
    pairs = jax.tree.leaves(vars_a)[0].shape[0]
    perm_sets, aligned_b, perm_error = [spec.identity()] * pairs, vars_b, np.zeros(pairs)
    if any(c.startswith("aligned") for c in conditions):
        perm_sets = align_pairs(model, spec, vars_a, vars_b, train, method)
        aligned_b = _permute_pairs(spec, vars_b, perm_sets)
        # π(B) must be B: compare logits on one batch (the spec's self-check).
        x0 = train[0][0]
        logits = jax.vmap(lambda v: model.apply(v, x0, train=False))
        perm_error = np.asarray(jax.numpy.abs(logits(vars_b) - logits(aligned_b)).max(axis=(1, 2)))
    wm_b = None
    if any(c.startswith("wm_") for c in conditions):
        wm_b = _permute_pairs(spec, vars_b, align_pairs(model, spec, vars_a, vars_b, train, "weight"))
    sites = spec.preact
    curves, ratios = {}, {}
    for cond in conditions:
        partner = vars_b if cond.startswith("naive") else wm_b if cond.startswith("wm_") else aligned_b
        nets = _lerp_pairs(vars_a, partner, alphas)
        correct = None
        if cond.endswith("_reset"):
            nets = repair.reset_bn(model, nets, train)
        if cond == "aligned_repair":
            ends = evaluate(model, _lerp_pairs(vars_a, aligned_b, np.asarray([0.0, 1.0])), train, stat_sites=sites)
            end0 = {s: (m[:, 0], v[:, 0]) for s, (m, v) in ends["stats"].items()}
            end1 = {s: (m[:, 1], v[:, 1]) for s, (m, v) in ends["stats"].items()}
            correct = repair.repair(model, nets, repair.goals_from_endpoints(end0, end1, alphas), train)
        on_train = evaluate(model, nets, train, stat_sites=sites, correct=correct)
        on_test = evaluate(model, nets, test, correct=correct)
        curves[cond] = {
            "train_loss": on_train["loss"],
            "train_acc": on_train["acc"],
            "test_loss": on_test["loss"],
            "test_acc": on_test["acc"],
        }
        ratios[cond] = repair.variance_ratio(on_train["stats"], sites, alphas)
        if log:
            sys.stderr.write(
                f"  {pairs} pair(s), {cond}: midpoint test acc "
                f"{np.round(100 * on_test['acc'][:, len(alphas) // 2], 1).tolist()} "
                f"[{time.strftime('%H:%M:%S')}]\n"
            )
    return perm_sets, perm_error, curves, ratios


def compare(
    model,
    vars_a,
    vars_b,
    train,
    test,
    alphas=9,
    *,
    method: str = "activation",
    conditions=DEFAULT_CONDITIONS,
    pair_chunk: int = 2,
    log: bool = False,
) -> dict:
    """Curves, barriers and variance ratios for pairs (leading axis of vars_a / vars_b).

    `train` / `test`: lists of (normalised images, labels) batches. Train batches also feed the
    matching correlations, the BN reset and REPAIR's statistics (un-augmented training data).
    """
    alphas = alpha_grid(alphas)
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise ConnectivityError(f"unknown condition(s) {unknown}; choose from {', '.join(CONDITIONS)}")
    check_same_model(jax.tree.map(lambda t: t[0], vars_a), jax.tree.map(lambda t: t[0], vars_b))
    spec = spec_for(model, jax.tree.map(lambda t: t[0], vars_a))
    pairs = jax.tree.leaves(vars_a)[0].shape[0]
    parts = []
    for start in range(0, pairs, pair_chunk):
        take = lambda tree: jax.tree.map(lambda t: np.asarray(t)[start : start + pair_chunk], tree)
        parts.append(_chunk(model, spec, take(vars_a), take(vars_b), alphas, train, test, method, conditions, log))
    perm_sets = [p for part in parts for p in part[0]]
    perm_error = np.concatenate([part[1] for part in parts])
    curves = {c: {m: np.concatenate([part[2][c][m] for part in parts]) for m in METRICS} for c in conditions}
    ratios = {c: np.concatenate([part[3][c] for part in parts]) for c in conditions}
    return {
        "alphas": alphas,
        "curves": curves,
        "variance_ratio": ratios,
        "variance_sites": list(spec.preact),
        "perm_max_abs_logit_diff": perm_error,
        "perms": perm_sets,
        "barriers": curve_barriers(curves, alphas),
    }


def curve_barriers(curves: dict, alphas) -> dict:
    """{condition: {metric: {variant: [P]}}}; accuracy barriers are drops (positive = worse)."""
    return {
        cond: {
            metric: barriers(values, alphas, higher_is_worse=metric.endswith("loss"))
            for metric, values in by_metric.items()
        }
        for cond, by_metric in curves.items()
    }


def reductions(barrier_table: dict, before: str = "aligned", after=("aligned_reset", "aligned_repair")) -> dict:
    """REPAIR's headline: (B_before − B_after) / B_before per pair, for each metric and variant."""
    out = {}
    for cond in after:
        if cond in barrier_table and before in barrier_table:
            out[cond] = {
                metric: {
                    variant: relative_reduction(barrier_table[before][metric][variant], values)
                    for variant, values in by_variant.items()
                }
                for metric, by_variant in barrier_table[cond].items()
            }
    return out
