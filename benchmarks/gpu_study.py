"""Seed-study throughput on one GPU: runs/hour and MFU for the paper's ResNet-9 and the
airbench94 recipe, for several numbers of stacked runs S.

For each configuration and S: resolve the strategy (default "auto": candidates timed and
cached by vmaptrain.autotune), then time (1) compile + first step, (2) steady-state steps
(median of `--steps`), and (3) optionally a whole study (`--full`, training + evaluation,
the honest runs/hour). Reported per S: ms per step, runs/hour projected from the steady step
time (training only) and measured end to end, model FLOPs per step (XLA's cost analysis of one
run's forward pass × 3, × S) and MFU against the device's dense bf16 peak.

Data: CIFAR-10 (JPEG copy) from /work/shared/data/cifar10-jpg.tar.gz, unpacked once into
`--data_dir` and read with vmaptrain's `folder:` source. `--dry_run` replaces it with a small
random 32×32×3 npz and tiny widths so the whole script runs on CPU in about a minute.

    PYTHONPATH=. python benchmarks/gpu_study.py --config=resnet9_64ep --num_seeds=8,16,32 --full
    PYTHONPATH=. python benchmarks/gpu_study.py --dry_run

Results go to benchmarks/results/gpu_study_<device>.json (dry runs: /tmp unless --out).
This file holds no measured GPU numbers: run it on the GPU to get them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

CIFAR_TAR = "/work/shared/data/cifar10-jpg.tar.gz"

from vmaptrain import presets  # noqa: E402

# name → StudyConfig fields. resnet9_64ep: the paper's 60k-run configuration (paper-configs.md
# §1.3; fp32 here, add --bf16 for bf16 convolutions). airbench94: vmaptrain's airbench94 recipe
# (net, optimizer, lookahead, alternating flip, 9.9 epochs, 6-view TTA); its accuracy is
# reported with its runs/hour.
CONFIGS = {
    "resnet9_64ep": dict(
        model="resnet9_paper",
        width=1.0,
        epochs=64,
        batch_size=500,
        optimizer="sgd",
        lr=0.5,
        momentum=0.9,
        wd=5e-4,
        schedule="linear",
        flip="random",
        translate=2,
        cutout=12,
    ),
    "airbench94": presets.recipe("airbench94"),
}
# Dense bf16 tensor-core peaks (TFLOP/s) by device_kind substring (gpu-performance.md §3).
PEAKS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "A100": 312.0}


def peak_tflops(device_kind: str, override: float | None) -> float | None:
    if override:
        return override
    for name, peak in PEAKS.items():
        if name.lower() in device_kind.lower():
            return peak
    return None


def cifar_folder(data_dir: str) -> str:
    """Unpack the JPEG copy once; the `folder:` dataset string for it."""
    marker = os.path.join(data_dir, ".unpacked")
    if not os.path.exists(marker):
        os.makedirs(data_dir, exist_ok=True)
        with tarfile.open(CIFAR_TAR) as tar:
            tar.extractall(data_dir, filter="data")
        open(marker, "w").close()
    root = data_dir
    if not os.path.isdir(os.path.join(root, "train")):  # the archive may hold one top folder
        subs = [d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d, "train"))]
        root = os.path.join(root, subs[0])
    return f"folder:{root}"


def dry_run_dataset() -> str:
    import numpy as np

    rng = np.random.default_rng(0)
    path = os.path.join(tempfile.mkdtemp(prefix="gpu_study_dry_"), "tiny.npz")
    x = rng.integers(0, 256, (640, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 640).astype(np.int64)
    np.savez(path, x_train=x[:512], y_train=y[:512], x_test=x[512:], y_test=y[512:])
    return f"npz:{path}"


def forward_flops(spec, data) -> float:
    """XLA's FLOP count of one run's forward pass on one training batch."""
    import jax
    import jax.numpy as jnp

    images = jnp.zeros((spec.batch_size,) + data.x_train.shape[1:], jnp.float32)
    variables = jax.eval_shape(lambda: spec.model.init(jax.random.key(0), images[:1], train=False))
    fn = lambda v, x: spec.model.apply(v, x, train=True, mutable=["batch_stats"])[0]
    cost = jax.jit(fn).lower(variables, images).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", 0.0))


def measure(
    config_name: str,
    fields: dict,
    dataset: str,
    num_seeds: int,
    strategy: str,
    steps: int,
    full: bool,
    peak: float | None,
    log,
) -> dict:
    import jax
    import numpy as np

    from vmaptrain import autotune, distributed, study
    from vmaptrain.config import StudyConfig
    from vmaptrain.data import load_dataset

    config = StudyConfig(dataset=dataset, num_seeds=num_seeds, strategy=strategy, **fields)
    data = load_dataset(dataset)
    spec = study.build_spec(config, data)
    devices = tuple(distributed.seed_mesh().devices.flat)
    start = time.perf_counter()
    chosen = autotune.resolve(config, spec, data, devices, num_seeds) if strategy == "auto" else strategy
    tune_s = time.perf_counter() - start
    step = autotune.study_stepper(config, spec, data, devices, chosen, num_seeds)
    start = time.perf_counter()
    jax.block_until_ready(step())
    first_s = time.perf_counter() - start
    jax.block_until_ready(step())
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        jax.block_until_ready(step())
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    total_steps = config.total_steps(spec.steps_per_epoch)
    flops = 3.0 * forward_flops(spec, data) * num_seeds
    out = {
        "config": config_name,
        "fields": fields,
        "num_seeds": num_seeds,
        "strategy": chosen,
        "autotune_s": tune_s,
        "compile_and_first_step_s": first_s,
        "step_ms_median": 1000 * step_s,
        "step_ms_p10_p90": [1000 * float(np.percentile(times, 10)), 1000 * float(np.percentile(times, 90))],
        "steps_per_run": total_steps,
        "train_flops_per_step": flops,
        "runs_per_hour_training_only": 3600 * num_seeds / (step_s * total_steps),
        "mfu": (flops / step_s / (peak * 1e12)) if peak else None,
    }
    mfu_text = f"{100 * out['mfu']:.1f}%" if out["mfu"] else "n/a (unknown peak)"
    log(
        f"{config_name} S={num_seeds} {chosen}: {1000 * step_s:.1f} ms/step, "
        f"{out['runs_per_hour_training_only']:.0f} runs/h (training only), MFU {mfu_text}"
    )
    if full:
        start = time.perf_counter()
        result = study.SeedStudy(dataclasses.replace(config, strategy=chosen)).run(progress=False)
        wall = time.perf_counter() - start
        acc = [r["test_accuracy"] for r in result.runs]
        out.update(
            {
                "study_wall_s": wall,
                "runs_per_hour_end_to_end": 3600 * num_seeds / wall,
                "accuracy_mean": float(np.mean(acc)),
                "accuracy_std": float(np.std(acc, ddof=1)) if len(acc) > 1 else None,
            }
        )
        log(
            f"  whole study: {wall:.1f} s → {out['runs_per_hour_end_to_end']:.0f} runs/h, "
            f"accuracy {out['accuracy_mean']:.4f}"
        )
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="all", choices=["all"] + sorted(CONFIGS))
    parser.add_argument("--num_seeds", default="8,16,32", help="comma-separated S values to try")
    parser.add_argument("--strategy", default="auto", help="vmaptrain strategy (default: auto)")
    parser.add_argument("--bf16", action="store_true", help="bf16 convolutions (adds +bf16 to the strategy)")
    parser.add_argument("--steps", type=int, default=20, help="timed steady-state steps")
    parser.add_argument("--epochs", type=float, default=None, help="override the configuration's epochs")
    parser.add_argument("--full", action="store_true", help="also train whole studies (runs/hour end to end)")
    parser.add_argument(
        "--data_dir", default=os.path.join(os.path.expanduser("~"), ".cache", "vmaptrain", "cifar10-jpg")
    )
    parser.add_argument("--peak_tflops", type=float, default=None, help="override the MFU denominator")
    parser.add_argument("--dry_run", action="store_true", help="tiny random data and widths (runs on CPU)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import jax

    log = lambda message: print(message, flush=True)
    device = jax.devices()[0]
    names = sorted(CONFIGS) if args.config == "all" else [args.config]
    seeds = [int(s) for s in args.num_seeds.split(",")]
    if args.dry_run:
        dataset, seeds, steps = dry_run_dataset(), seeds[:1] if args.num_seeds != "8,16,32" else [2], 2
    else:
        if device.platform != "gpu":
            log(f"warning: running on {device.platform}; these are not GPU numbers")
        dataset, steps = cifar_folder(args.data_dir), args.steps
    peak = peak_tflops(device.device_kind, args.peak_tflops)
    report = {
        "device": device.device_kind,
        "platform": device.platform,
        "jax": jax.__version__,
        "peak_tflops": peak,
        "dry_run": args.dry_run,
        "dataset": dataset,
        "results": [],
    }
    for name in names:
        fields = dict(CONFIGS[name])
        if args.epochs is not None:
            fields["epochs"] = args.epochs
        if args.dry_run:
            fields.update(width=0.0625, epochs=1, batch_size=64, warmup_epochs=0.0)
        strategy = args.strategy
        if args.bf16:
            if strategy == "auto":
                log(
                    "note: --bf16 with auto times the float32 candidates and adds +bf16 to none; "
                    "give an explicit strategy, e.g. vmap+bf16"
                )
            else:
                strategy += "+bf16"
        for s in seeds:
            report["results"].append(
                measure(name, fields, dataset, s, strategy, steps, args.full or args.dry_run, peak, log)
            )
    out = args.out or (
        os.path.join(tempfile.gettempdir(), "gpu_study_dry_run.json")
        if args.dry_run
        else os.path.join(HERE, "results", f"gpu_study_{device.device_kind.replace(' ', '_')}.json")
    )
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    log(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
