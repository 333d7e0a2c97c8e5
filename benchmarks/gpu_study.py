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
random 32×32×3 npz and tiny widths so the whole script runs on CPU: with the default strategy
"auto" that compiles and times every CPU candidate for both configurations (over 3 minutes on a
loaded 2-core machine); with an explicit one, e.g. `--strategy=unrolled+direct`, about 100 s.

    PYTHONPATH=. python benchmarks/gpu_study.py --config=resnet9_64ep --num_seeds=8,16,32 --full
    PYTHONPATH=. python benchmarks/gpu_study.py --dry_run

Results go to benchmarks/results/gpu_study_<device>.json (dry runs: /tmp unless --out), with
the host's CPU model (`vmaptrain.machine.cpu_model`, also printed first) as "cpu_model".
This file holds no measured GPU numbers: run it on the GPU to get them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import sys
import tarfile
import tempfile
import time

from absl import app, flags

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

CIFAR_TAR = "/work/shared/data/cifar10-jpg.tar.gz"
DATA_DIR = os.path.join(os.path.expanduser("~"), ".cache", "vmaptrain", "cifar10-jpg")

from vmaptrain import cli, machine, presets  # noqa: E402
from vmaptrain.engine.strategy import Strategy  # noqa: E402

# name → StudyConfig fields. resnet9_64ep: the paper's 60k-run configuration (Jordan, "Calibrated
# Chaos", App. A.1; docs/presets.md, resnet9_paper; fp32 here, add --bf16 for bf16 convolutions).
# airbench94: vmaptrain's airbench94 recipe (net, optimizer, lookahead, alternating flip, 9.9
# epochs, 6-view TTA); its accuracy is reported with its runs/hour.
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
# Dense bf16 tensor-core peaks (TFLOP/s) by device_kind substring, from the "BF16 Tensor Core" rows
# of NVIDIA's datasheets: A100 Tensor Core GPU (its dense figure, listed beside the sparse one);
# H100 Tensor Core GPU, SXM and PCIe, and H200 (listed with sparsity only: the dense peak is half).
# First match wins, so "H100 PCIe" comes before "H100".
PEAKS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "A100": 312.0}


def _seed_counts_ok(text: str) -> bool:
    try:
        return all(int(s) >= 1 for s in text.split(","))
    except ValueError:
        return False


def _strategy_ok(text: str) -> bool:
    try:
        Strategy.parse(text)
    except ValueError as err:
        raise flags.ValidationError(str(err)) from None
    return True


_CONFIG = flags.DEFINE_enum("config", "all", ["all"] + sorted(CONFIGS), "Configuration(s) to measure")
_NUM_SEEDS = flags.DEFINE_string("num_seeds", "8,16,32", "Comma-separated S values to try")
_STRATEGY = flags.DEFINE_string("strategy", "auto", "vmaptrain strategy (default: auto)")
_BF16 = flags.DEFINE_bool("bf16", False, "bf16 convolutions (adds +bf16 to the strategy)")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steady-state steps", lower_bound=1)
_EPOCHS = flags.DEFINE_float("epochs", None, "Override the configuration's epochs", lower_bound=0.0)
_FULL = flags.DEFINE_bool("full", False, "Also train whole studies (runs/hour end to end)")
_DATA_DIR = flags.DEFINE_string("data_dir", DATA_DIR, "Where the CIFAR-10 JPEG copy is unpacked (once)")
_PEAK_TFLOPS = flags.DEFINE_float("peak_tflops", None, "Override the MFU denominator", lower_bound=0.0)
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Tiny random data and widths (runs on CPU)")
_OUT = flags.DEFINE_string("out", None, "Where the JSON report goes (default: see above)")
flags.register_validator("num_seeds", _seed_counts_ok, message="expected comma-separated positive integers")
flags.register_validator("strategy", _strategy_ok)


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

    from vmaptrain import autotune, specs, study
    from vmaptrain.config import StudyConfig
    from vmaptrain.data import load_dataset
    from vmaptrain.engine import placement

    config = StudyConfig(dataset=dataset, num_seeds=num_seeds, strategy=strategy, **fields)
    data = load_dataset(dataset)
    spec = specs.build_spec(config, data)
    specs.check_model(spec, data)
    devices = tuple(placement.seed_mesh().devices.flat)
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


def benchmark(
    config: str = "all",
    num_seeds: str = "8,16,32",
    strategy: str = "auto",
    bf16: bool = False,
    steps: int = 20,
    epochs: float | None = None,
    full: bool = False,
    data_dir: str = DATA_DIR,
    peak_override: float | None = None,
    dry_run: bool = False,
    out: str | None = None,
) -> dict:
    """The whole benchmark (what the flags describe); writes the report and returns it."""
    import jax

    log = lambda message: print(message, flush=True)
    cpu = machine.cpu_model()
    log(f"cpu: {cpu}")
    device = jax.devices()[0]
    names = sorted(CONFIGS) if config == "all" else [config]
    seeds = [int(s) for s in num_seeds.split(",")]
    if dry_run:
        dataset, seeds, steps = dry_run_dataset(), seeds[:1] if num_seeds != "8,16,32" else [2], 2
    else:
        if device.platform != "gpu":
            log(f"warning: running on {device.platform}; these are not GPU numbers")
        dataset = cifar_folder(data_dir)
    peak = peak_tflops(device.device_kind, peak_override)
    report = {
        "cpu_model": cpu,
        "device": device.device_kind,
        "platform": device.platform,
        "jax": jax.__version__,
        "peak_tflops": peak,
        "dry_run": dry_run,
        "dataset": dataset,
        "results": [],
    }
    for name in names:
        fields = dict(CONFIGS[name])
        if epochs is not None:
            fields["epochs"] = epochs
        if dry_run:
            fields.update(width=0.0625, epochs=1, batch_size=64, warmup_epochs=0.0)
        chosen = strategy
        if bf16:
            if strategy == "auto":
                log(
                    "note: --bf16 with auto times the float32 candidates and adds +bf16 to none; "
                    "give an explicit strategy, e.g. vmap+bf16"
                )
            elif not Strategy.parse(strategy).has("bf16"):
                chosen = strategy + "+bf16"
        for s in seeds:
            report["results"].append(measure(name, fields, dataset, s, chosen, steps, full or dry_run, peak, log))
    out = out or (
        os.path.join(tempfile.gettempdir(), "gpu_study_dry_run.json")
        if dry_run
        else os.path.join(HERE, "results", f"gpu_study_{device.device_kind.replace(' ', '_')}.json")
    )
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    log(f"wrote {out}")
    return report


def main(argv) -> None:
    cli.reject_extra_args(argv)
    cli.run_or_exit(
        lambda: benchmark(
            config=_CONFIG.value,
            num_seeds=_NUM_SEEDS.value,
            strategy=_STRATEGY.value,
            bf16=_BF16.value,
            steps=_STEPS.value,
            epochs=_EPOCHS.value,
            full=_FULL.value,
            data_dir=_DATA_DIR.value,
            peak_override=_PEAK_TFLOPS.value,
            dry_run=_DRY_RUN.value,
            out=_OUT.value,
        )
    )


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
