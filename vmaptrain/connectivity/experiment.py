"""The connectivity experiment: studies per width → pair comparisons → report.json + figures.

Resumable at every stage: each width's SeedStudy runs in its own sub-workdir (resumable by
the study machinery) and keeps its final weights there (`keep_weights`), so a rerun reads them
instead of retraining; each width's analysis is cached as JSON; report.json is written last, atomically,
and a workdir holding it is returned as is.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np

from vmaptrain import store
from vmaptrain.config import StudyConfig
from vmaptrain.connectivity import plots
from vmaptrain.connectivity.compare import DEFAULT_CONDITIONS, compare, reductions
from vmaptrain.connectivity.errors import ConnectivityError
from vmaptrain.connectivity.interpolate import BARRIER_VARIANTS, alpha_grid, relative_reduction
from vmaptrain.connectivity.pairs import all_pairs, check_pairs, gather_pairs, make_batches, run_variables


@dataclasses.dataclass(frozen=True)
class Scale:
    study: dict  # StudyConfig fields shared by every width
    widths: tuple = (1.0,)
    alphas: int = 9
    train_count: int = 1000  # training examples for matching / BN reset / REPAIR / train metrics
    test_count: int = 1000
    batch: int = 250
    max_pairs: int = 10
    pair_chunk: int = 2
    method: str = "activation"
    conditions: tuple = DEFAULT_CONDITIONS
    spawn_steps: tuple = ()  # instability analysis: trunk steps k (empty = skipped)
    children: int = 2
    noise: str = "order"


SCALES = {
    # Seconds: proves the pipeline end to end (used by the tests).
    "smoke": Scale(
        study=dict(
            dataset="digits", model="small_cnn", num_seeds=3, epochs=1, batch_size=128, lr=0.05, strategy="vmap"
        ),
        widths=(0.25,),
        alphas=3,
        train_count=256,
        test_count=256,
        batch=128,
        max_pairs=3,
        pair_chunk=3,
        spawn_steps=(0, 5, 11),
        children=3,
    ),
    # ≤ 25 minutes on 2 shared CPU cores.
    "cpu": Scale(
        study=dict(
            dataset="digits",
            model="resnet14_sd",
            num_seeds=5,
            epochs=30,
            batch_size=64,
            lr=0.1,
            warmup_epochs=1.0,
            strategy="unrolled",
        ),
        widths=(0.5, 1.0, 2.0),
        alphas=7,
        train_count=700,
        test_count=364,
        batch=350,
        max_pairs=10,
        pair_chunk=2,
        conditions=(
            "naive",
            "naive_reset",
            "aligned",
            "aligned_reset",
            "aligned_repair",
            "wm_aligned",
            "wm_aligned_reset",
        ),
        spawn_steps=(0, 11, 44, 110, 220, 440),
        children=3,
    ),
    # The REPAIR-style setting (needs an accelerator): CIFAR-10, widths 1-4.
    "paper": Scale(
        study=dict(
            dataset="cifar10",
            model="resnet14_sd",
            num_seeds=8,
            epochs=100,
            batch_size=500,
            lr=0.4,
            wd=5e-4,
            warmup_epochs=5.0,
            flip="random",
            translate=4,
            strategy="vmap",
        ),
        widths=(1.0, 2.0, 4.0),
        alphas=25,
        train_count=10000,
        test_count=10000,
        batch=500,
        max_pairs=28,
        pair_chunk=4,
        conditions=("naive", "naive_reset", "aligned", "aligned_reset", "aligned_repair"),
        spawn_steps=(0, 100, 250, 500, 1000, 2000),
        children=3,
    ),
}


def study_variables(config: StudyConfig, workdir: str):
    """Train (or resume, or read back) a width's study with its weights kept; its final stacked
    variables and the result (`study.final_variables`)."""
    from vmaptrain.study import final_variables

    return final_variables(config, workdir)


def summarize(values) -> dict:
    v = np.asarray(values, np.float64)
    finite = v[np.isfinite(v)]
    if not finite.size:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {
        "mean": float(finite.mean()),
        "std": float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
        "min": float(finite.min()),
        "max": float(finite.max()),
        "n": int(finite.size),
    }


def _lists(tree):
    return jax.tree.map(lambda a: np.asarray(a).tolist(), tree)


def analyse_width(scale: Scale, config: StudyConfig, workdir: str, pairs=None, log: bool = False) -> dict:
    from vmaptrain.data import load_dataset

    variables, result = study_variables(config, workdir)
    data = load_dataset(config.dataset, data_dir=config.data_dir)
    pairs = check_pairs(config.num_seeds, pairs) if pairs else all_pairs(config.num_seeds, scale.max_pairs)
    train = make_batches(data.x_train, data.y_train, data.mean, data.std, count=scale.train_count, batch=scale.batch)
    test = make_batches(data.x_test, data.y_test, data.mean, data.std, count=scale.test_count, batch=scale.batch)
    vars_a, vars_b = gather_pairs(variables, pairs)
    out = compare(
        result.spec.model,
        vars_a,
        vars_b,
        train,
        test,
        scale.alphas,
        method=scale.method,
        conditions=scale.conditions,
        pair_chunk=scale.pair_chunk,
        log=log,
    )
    red = reductions(out["barriers"])
    mid = len(out["alphas"]) // 2
    return {
        "width": config.width,
        "pairs": [list(p) for p in pairs],
        "run_test_accuracy": [r["test_accuracy"] for r in result.runs],
        "curves": _lists(out["curves"]),
        "barriers": _lists(out["barriers"]),
        "barrier_summary": jax.tree.map(summarize, out["barriers"], is_leaf=lambda x: isinstance(x, np.ndarray)),
        "reduction": _lists(red),
        "reduction_summary": jax.tree.map(summarize, red, is_leaf=lambda x: isinstance(x, np.ndarray)),
        "variance_sites": out["variance_sites"],
        "variance_ratio_midpoint": {
            c: np.asarray(r[:, mid]).mean(0).tolist() for c, r in out["variance_ratio"].items()
        },
        "perm_max_abs_logit_diff": np.asarray(out["perm_max_abs_logit_diff"]).tolist(),
    }


def analyse_instability(scale: Scale, config: StudyConfig) -> dict:
    from vmaptrain.connectivity.instability import spawn_children
    from vmaptrain.data import load_dataset

    data = load_dataset(config.dataset, data_dir=config.data_dir)
    spec, kids = spawn_children(config, data, scale.spawn_steps, children=scale.children, noise=scale.noise)
    train = make_batches(data.x_train, data.y_train, data.mean, data.std, count=scale.train_count, batch=scale.batch)
    test = make_batches(data.x_test, data.y_test, data.mean, data.std, count=scale.test_count, batch=scale.batch)
    pairs = all_pairs(scale.children)
    by_k = {}
    for k, state in kids.items():
        vars_a, vars_b = gather_pairs(run_variables(state), pairs)
        out = compare(
            spec.model, vars_a, vars_b, train, test, scale.alphas, conditions=("naive",), pair_chunk=scale.pair_chunk
        )
        by_k[str(k)] = {"curves": _lists(out["curves"]["naive"]), "barriers": _lists(out["barriers"]["naive"])}
    return {
        "width": config.width,
        "noise": scale.noise,
        "children": scale.children,
        "total_steps": config.epochs * spec.steps_per_epoch,
        "spawn_steps": [int(k) for k in kids],
        "by_step": by_k,
    }


def run(
    workdir: str,
    scale_name: str = "smoke",
    *,
    overrides: dict | None = None,
    widths=None,
    pairs=None,
    alphas=None,
    noise: str | None = None,
    instability: bool = True,
    figures_dir: str | None = None,
) -> dict:
    """The whole experiment; returns the report (also workdir/report.json + PNGs)."""
    if scale_name not in SCALES:
        raise ConnectivityError(f"unknown scale '{scale_name}'; choose from {', '.join(SCALES)}")
    scale = SCALES[scale_name]
    if alphas is not None:
        scale = dataclasses.replace(scale, alphas=alphas)
    if noise is not None:
        scale = dataclasses.replace(scale, noise=noise)
    report_path = os.path.join(workdir, "report.json")
    if os.path.exists(report_path):
        return store.read_json(report_path)
    alpha_grid(scale.alphas)
    base = {**scale.study, **(overrides or {})}
    widths = tuple(widths or scale.widths)
    if not widths or any(not w > 0 for w in widths):
        raise ConnectivityError(f"widths must be positive numbers, got {list(widths)}")
    first = StudyConfig(**base)
    if pairs:  # refuse bad pairs before any training
        check_pairs(first.num_seeds, pairs)
    if instability and scale.spawn_steps:
        from vmaptrain.connectivity.instability import NOISE

        if scale.noise not in NOISE:
            raise ConnectivityError(f"unknown spawn noise '{scale.noise}'; choose from {', '.join(NOISE)}")
        if scale.noise == "aug" and first.flip == "none" and not first.translate and not first.cutout:
            raise ConnectivityError(
                "spawn noise 'aug' needs augmentation (flip, translate or cutout); "
                "without it the children would be identical"
            )
    os.makedirs(workdir, exist_ok=True)
    report = {
        "scale": scale_name,
        "study": base,
        "alphas": alpha_grid(scale.alphas).tolist(),
        "method": scale.method,
        "conditions": list(scale.conditions),
        "barrier_variants": list(BARRIER_VARIANTS),
        "barrier_sign": "positive = worse than the endpoints (loss up, accuracy down); accuracy in fractions",
        "reduction": "(B_aligned - B_after) / B_aligned per pair; NaN where B_aligned <= 0",
        "widths": {},
    }
    for width in widths:
        cache = os.path.join(workdir, f"analysis_w{width:g}.json")
        if os.path.exists(cache):
            report["widths"][f"{width:g}"] = store.read_json(cache)
            continue
        config = StudyConfig(**{**base, "width": width})
        entry = analyse_width(
            scale, config, os.path.join(workdir, f"study_w{width:g}"), pairs, log=scale_name != "smoke"
        )
        store.write_json(cache, entry)
        report["widths"][f"{width:g}"] = entry
    if instability and scale.spawn_steps:
        cache = os.path.join(workdir, "instability.json")
        if os.path.exists(cache):
            report["instability"] = store.read_json(cache)
        else:
            report["instability"] = analyse_instability(scale, StudyConfig(**{**base, "width": widths[0]}))
            store.write_json(cache, report["instability"])
    try:
        os.makedirs(figures_dir or workdir, exist_ok=True)
    except OSError as err:
        raise ConnectivityError(f"cannot create the figures directory {figures_dir}: {err.strerror or err}") from None
    for name, png in plots.figures(report).items():
        store.write_bytes(os.path.join(figures_dir or workdir, name), png)
    store.write_json(report_path, report)
    return report


def parse_pairs(items) -> list[tuple[int, int]] | None:
    """['0-1', '2-3'] → [(0, 1), (2, 3)]."""
    if not items:
        return None
    pairs = []
    for item in items:
        left, sep, right = item.partition("-")
        if not sep or not left.strip().isdigit() or not right.strip().isdigit():
            raise ConnectivityError(f"a pair is written i-j with run indices i and j, got '{item}'")
        pairs.append((int(left), int(right)))
    return pairs


def from_flags(values) -> None:
    """experiments/connectivity.py's flags → `run`; prints a one-line summary per width."""
    import json

    overrides = {
        name: getattr(values, name)
        for name in ("dataset", "model", "epochs", "num_seeds")
        if getattr(values, name) is not None
    }
    try:
        widths = [float(w) for w in values.widths] if values.widths else None
    except ValueError:
        raise ConnectivityError(f"widths must be numbers, got {values.widths}") from None
    alphas = None
    if values.alphas:
        try:
            numbers = [float(a) for a in values.alphas]
        except ValueError:
            raise ConnectivityError(f"alphas must be numbers, got {values.alphas}") from None
        alphas = int(numbers[0]) if len(numbers) == 1 and numbers[0] == int(numbers[0]) else numbers
    report = run(
        values.workdir,
        values.scale,
        overrides=overrides,
        widths=widths,
        alphas=alphas,
        noise=values.noise,
        pairs=parse_pairs(values.pairs),
        instability=values.instability,
        figures_dir=values.figures_dir,
    )
    for width, entry in report["widths"].items():
        summary = {
            cond: round(100 * entry["barrier_summary"][cond]["test_acc"]["midpoint"]["mean"], 2)
            for cond in entry["barrier_summary"]
        }
        print(json.dumps({"width": width, "pairs": len(entry["pairs"]), "midpoint_test_acc_barrier_points": summary}))


def markdown_tables(report: dict) -> str:
    """The report's barrier tables as Markdown (for docs/connectivity.md)."""
    lines = []
    conds = report["conditions"]
    for split in ("test", "train"):
        lines.append(f"\n**Midpoint {split}-accuracy barrier, points (mean ± std over pairs [min, max])**\n")
        lines.append("| width | endpoints acc | " + " | ".join(conds) + " |")
        lines.append("|---" * (len(conds) + 2) + "|")
        for width, entry in report["widths"].items():
            curves = entry["curves"]["naive"][f"{split}_acc"]
            ends = 100 * np.mean([[c[0], c[-1]] for c in curves])
            cells = []
            for cond in conds:
                s = entry["barrier_summary"][cond][f"{split}_acc"]["midpoint"]
                cells.append(
                    f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f} [{100 * s['min']:.1f}, {100 * s['max']:.1f}]"
                )
            lines.append(f"| ×{width} ({len(entry['pairs'])} pairs) | {ends:.1f} | " + " | ".join(cells) + " |")
    lines.append("\n**Test-loss barriers (mean over pairs): midpoint / max-minus-mean / max gap to the line**\n")
    lines.append("| width | " + " | ".join(conds) + " |")
    lines.append("|---" * (len(conds) + 1) + "|")
    for width, entry in report["widths"].items():
        cells = []
        for cond in conds:
            s = entry["barrier_summary"][cond]["test_loss"]
            cells.append(" / ".join(f"{s[v]['mean']:.3f}" for v in ("midpoint", "max_minus_mean", "max_gap_to_line")))
        lines.append(f"| ×{width} | " + " | ".join(cells) + " |")
    lines.append("\n**Relative reduction of the aligned barrier, (B_aligned − B_after)/B_aligned (mean over pairs)**\n")
    afters = [c for c in next(iter(report["widths"].values()))["reduction_summary"]]
    lines.append("| width | " + " | ".join(f"{a}: test acc / test loss (midpoint)" for a in afters) + " |")
    lines.append("|---" * (len(afters) + 1) + "|")
    wm = "wm_aligned" in conds and "wm_aligned_reset" in conds
    if wm:
        lines[-2] = lines[-2][:-1] + "| wm_aligned_reset vs wm_aligned: test acc / test loss |"
        lines[-1] += "---|"
    for width, entry in report["widths"].items():
        cells = []
        for after in afters:
            red = entry["reduction_summary"][after]
            cells.append(
                f"{100 * red['test_acc']['midpoint']['mean']:.0f}% / {100 * red['test_loss']['midpoint']['mean']:.0f}%"
            )
        if wm:
            b = entry["barriers"]
            pair = [
                np.nanmean(relative_reduction(b["wm_aligned"][m]["midpoint"], b["wm_aligned_reset"][m]["midpoint"]))
                for m in ("test_acc", "test_loss")
            ]
            cells.append(f"{100 * pair[0]:.0f}% / {100 * pair[1]:.0f}%")
        lines.append(f"| ×{width} | " + " | ".join(cells) + " |")
    lines.append("\n**Variance collapse R_ℓ at α = ½ (mean over pairs), first / middle / last preactivation layer**\n")
    lines.append("| width | " + " | ".join(conds) + " |")
    lines.append("|---" * (len(conds) + 1) + "|")
    for width, entry in report["widths"].items():
        cells = []
        for cond in conds:
            r = entry["variance_ratio_midpoint"][cond]
            cells.append(f"{r[0]:.2f} / {r[len(r) // 2]:.2f} / {r[-1]:.2f}")
        lines.append(f"| ×{width} | " + " | ".join(cells) + " |")
    if "instability" in report:
        inst = report["instability"]
        lines.append(
            f"\n**Instability (width ×{inst['width']:g}, children differ in {inst['noise']}, "
            f"{inst['children']} children → {inst['children'] * (inst['children'] - 1) // 2} pairs per k; "
            f"T = {inst['total_steps']} steps): max-minus-mean error barrier, points**\n"
        )
        lines.append("| spawn step k | test error barrier | train error barrier | test loss barrier |")
        lines.append("|---|---|---|---|")
        for k in inst["spawn_steps"]:
            b = inst["by_step"][str(k)]["barriers"]
            cell = lambda m, s=100: (
                f"{s * np.mean(b[m]['max_minus_mean']):.2f} ± {s * np.std(b[m]['max_minus_mean']):.2f}"
            )
            lines.append(f"| {k} | {cell('test_acc')} | {cell('train_acc')} | {cell('test_loss', 1)} |")
    return "\n".join(lines) + "\n"
