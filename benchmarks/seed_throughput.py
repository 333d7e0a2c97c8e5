"""Seed-parallel training throughput on this machine: vmaptrain vs the obvious alternatives.

For S runs of one model (default: the reference net, small_cnn width 1, batch 256 of 28×28×1,
S = 8), measured in one process, round by round interleaved so that load from other processes
hits every variant alike:

  (a) vmaptrain with `--strategy` (default: the study default for this backend and CPU family;
      "auto" times candidates, cached by vmaptrain.autotune)
  (b) naive `jax.vmap` of the per-run step (vmaptrain's "vmap" strategy: jit(vmap(step)))
  (c) a Python loop of single-run jitted JAX steps, S calls per round
  (d) PyTorch eager, the S trainings one after another (benchmarks/torch_reference.py)

Model-steps/s = S / (median seconds per round). `--study` adds a whole-study figure: wall time
of S runs × E epochs of Fashion-MNIST (training + test evaluation, compile included for JAX) vs
the same in PyTorch eager. `--registry` repeats (a)-(c) for every registry model at small size.

    PYTHONPATH=. python benchmarks/seed_throughput.py --study --registry

The CPU model (`vmaptrain.machine.cpu_model`) is printed first and recorded in the JSON.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from vmaptrain import autotune, cli, machine, specs, store, study, train  # noqa: E402
from vmaptrain.config import StudyConfig  # noqa: E402
from vmaptrain.data import load_dataset  # noqa: E402
from vmaptrain.engine import hostmem, placement, seed_axis, trainer  # noqa: E402

FASHION = "idx:/usr/share/datasets/fashion-mnist"
TORCH = "pytorch eager, runs one after another (own process)"
# Small sizes of every registry model for the "never slower than the loop" check.
REGISTRY_SIZES = {
    "small_cnn": (0.5, 128),
    "resnet14_sd": (0.25, 128),
    "resnet9_paper": (0.125, 128),
    "airbench94": (0.125, 128),
}
DEFAULT_OUT = os.path.join(HERE, "results", "seed_throughput_cpu.json")

_DATASET = flags.DEFINE_string("dataset", FASHION, "vmaptrain dataset string (28×28×1 for the reference net)")
_NUM_SEEDS = flags.DEFINE_integer("num_seeds", 8, "S, runs trained together", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Batch size of the reference net", lower_bound=1)
_WIDTH = flags.DEFINE_float("width", 1.0, "Width multiplier of the reference net", lower_bound=0.0)
_ROUNDS = flags.DEFINE_integer("rounds", 6, "Timed rounds per variant (median reported)", lower_bound=1)
_NO_TORCH = flags.DEFINE_bool("no_torch", False, "Skip the PyTorch variants")
_TORCH_THREADS = flags.DEFINE_integer("torch_threads", None, "torch.set_num_threads (default: torch's)", lower_bound=1)
_STUDY = flags.DEFINE_bool("study", False, "Also time a whole study vs PyTorch")
_STUDY_EPOCHS = flags.DEFINE_integer("study_epochs", 1, "Epochs of the whole study (--study)", lower_bound=1)
_REGISTRY = flags.DEFINE_bool("registry", False, "Also check every registry model at small size")
_OUT = flags.DEFINE_string("out", DEFAULT_OUT, "Where the JSON report goes")
_STRATEGY = flags.DEFINE_string("strategy", "default", "vmaptrain's strategy: default (the study default), auto, …")


def jax_loop_stepper(config, spec, data, num_runs: int):
    """(c): one jitted single-run step, called once per run (S dispatches per round); it runs
    under the same host allocator policy as the studies' programs (`cli.run_or_exit` applies it
    before the first JAX computation)."""
    _, inputs = trainer.run_inputs(config, list(range(num_runs)))
    sample = jnp.zeros((1,) + data.x_train.shape[1:], jnp.float32)
    init = jax.jit(lambda run: train.init_run(spec, *run, sample))
    states = [init(seed_axis.unstack(inputs, r)) for r in range(num_runs)]
    dev = jax.tree.map(jnp.asarray, trainer.device_data(data))
    perms = [train.epoch_permutation(s.order_key, 0, len(data.y_train)) for s in states]
    step = jax.jit(lambda s, p, k: train.run_step(spec, s, dev, p, 0, k), donate_argnums=0)
    counter = [0]

    def round_():
        k = np.int32(counter[0] % spec.steps_per_epoch)
        counter[0] += 1
        for r in range(num_runs):
            states[r], metrics = step(states[r], perms[r], k)
        return metrics["loss"]

    return round_


class TorchWorker:
    """(d) in a separate process (torch_reference.worker): S PyTorch trainings one after another.
    Only one of the two processes computes at any time; the other waits on a pipe."""

    def __init__(self, num_runs: int, batch: int, shape, threads: int | None):
        import subprocess

        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "torch_reference.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if num_runs is not None:
            h, w, c = shape
            self.info = self._ask(
                {"setup": {"num_runs": num_runs, "batch": batch, "shape": [c, h, w], "threads": threads}}
            )

    def _ask(self, command: dict) -> dict:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def rounds(self, n: int) -> list[float]:
        return self._ask({"rounds": n})["seconds"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def interleaved(fns: dict, rounds: int, torch_workers: dict, per_block: int = 2) -> dict:
    """Median seconds per round of each zero-argument JAX function (after `autotune.warm_up`)
    and of each torch worker; the JAX variants alternate round by round, each torch worker runs
    `per_block` rounds between blocks of JAX rounds."""
    autotune.warm_up(fns)
    samples = {name: [] for name in list(fns) + list(torch_workers)}
    for worker in torch_workers.values():
        worker.rounds(2)  # warm-up
    while min(len(v) for v in samples.values()) < rounds:
        for _ in range(per_block):
            for name, fn in fns.items():
                start = time.perf_counter()
                jax.block_until_ready(fn())
                samples[name].append(time.perf_counter() - start)
        for name, worker in torch_workers.items():
            samples[name] += worker.rounds(per_block)
    return {name: {"median_s": statistics.median(v), "min_s": min(v), "samples_s": v} for name, v in samples.items()}


def throughput(config, data, num_runs: int, rounds: int, with_torch: bool, torch_threads: int | None, log) -> dict:
    spec = specs.build_spec(config, data)
    specs.check_model(spec, data)
    devices = tuple(placement.seed_mesh().devices.flat)
    t0 = time.perf_counter()
    chosen = config.parsed_strategy.for_platform(devices[0].platform)
    if chosen.is_auto:
        chosen = autotune.resolve(config, spec, data, devices, num_runs)
    chosen = str(chosen)
    tune_s = time.perf_counter() - t0
    fns = {
        f"vmaptrain {config.strategy} ({chosen})": autotune.study_stepper(
            config, spec, data, devices, chosen, num_runs
        ),
        "naive jax.vmap": autotune.study_stepper(config, spec, data, devices, "vmap", num_runs),
        "loop of single-run jax steps": jax_loop_stepper(config, spec, data, num_runs),
    }
    workers = {}
    if with_torch:  # torch's default thread count, and 1 thread (robust when other processes load the cores)
        for threads in dict.fromkeys([torch_threads, 1]):
            label = f"{TORCH}, {threads or 'default'} thread(s)"
            workers[label] = TorchWorker(num_runs, config.batch_size, data.x_train.shape[1:], threads)
    try:
        timed = interleaved(fns, rounds, workers)
    finally:
        for worker in workers.values():
            worker.close()
    for t in timed.values():
        t["model_steps_per_s"] = num_runs / t["median_s"]
        t["ms_per_model_step"] = 1000 * t["median_s"] / num_runs
    ours = next(k for k in timed if k.startswith("vmaptrain "))
    ratios = {
        f"vmaptrain / {k}": timed[ours]["model_steps_per_s"] / timed[k]["model_steps_per_s"] for k in timed if k != ours
    }
    best_torch = max(
        (k for k in timed if k.startswith(TORCH)), key=lambda k: timed[k]["model_steps_per_s"], default=None
    )
    if best_torch is not None:
        ratios["vmaptrain / best pytorch"] = ratios[f"vmaptrain / {best_torch}"]
    for name, t in timed.items():
        log(
            f"  {name:60s} {t['model_steps_per_s']:7.2f} model-steps/s  "
            f"({t['ms_per_model_step']:.1f} ms per model-step)"
        )
    for name, r in ratios.items():
        log(f"  ratio {name:70s} {r:.2f}×")
    return {
        "model": config.model,
        "width": config.width,
        "batch_size": config.batch_size,
        "image_shape": list(data.x_train.shape[1:]),
        "num_runs": num_runs,
        "strategy": config.strategy,
        "chosen": chosen,
        "autotune_s": tune_s,
        "autotune_cache": autotune.cache_path(),
        "variants": timed,
        "ratios": ratios,
        "best_torch": best_torch,
    }


def whole_study(dataset: str, num_runs: int, epochs: int, batch: int, strategy: str, torch_threads, log) -> dict:
    config = StudyConfig(
        dataset=dataset,
        model="small_cnn",
        width=1.0,
        num_seeds=num_runs,
        epochs=epochs,
        batch_size=batch,
        strategy=strategy,
    )
    start = time.perf_counter()
    result = study.SeedStudy(config).run(progress=False)
    jax_s = time.perf_counter() - start
    jax_acc = [r["test_accuracy"] for r in result.runs]
    log(f"  vmaptrain ({strategy}): {jax_s:.1f} s incl. compile, mean test accuracy {np.mean(jax_acc):.4f}")
    worker = TorchWorker(None, None, None, None)
    try:
        torch_out = worker._ask(
            {
                "study": {
                    "dataset": dataset,
                    "num_runs": num_runs,
                    "epochs": epochs,
                    "batch": batch,
                    "threads": torch_threads,
                }
            }
        )
    finally:
        worker.close()
    log(
        f"  pytorch eager ({torch_out['threads']} threads): {torch_out['wall_s']:.1f} s, "
        f"mean test accuracy {np.mean(torch_out['accuracies']):.4f}"
    )
    log(f"  ratio torch / vmaptrain wall time: {torch_out['wall_s'] / jax_s:.2f}×")
    return {
        "dataset": dataset,
        "runs": num_runs,
        "epochs": epochs,
        "batch_size": batch,
        "strategy": strategy,
        "vmaptrain_wall_s": jax_s,
        "vmaptrain_accuracies": jax_acc,
        "torch_threads": torch_out["threads"],
        "torch_wall_s": torch_out["wall_s"],
        "torch_accuracies": torch_out["accuracies"],
        "speedup_vs_torch": torch_out["wall_s"] / jax_s,
    }


def benchmark(
    dataset: str = FASHION,
    num_seeds: int = 8,
    batch_size: int = 256,
    width: float = 1.0,
    rounds: int = 6,
    no_torch: bool = False,
    torch_threads: int | None = None,
    whole: bool = False,
    study_epochs: int = 1,
    registry: bool = False,
    out: str = DEFAULT_OUT,
    strategy: str = "default",
    log=None,
) -> dict:
    """The whole benchmark (what the flags describe; `whole` is --study); writes the report to `out`
    and returns it."""
    log = log or (lambda message: print(message, flush=True))
    cpu = machine.cpu_model()
    log(f"cpu: {cpu}")
    data = load_dataset(dataset)
    report = {
        "command": " ".join(["python"] + sys.argv),
        "cpu_model": cpu,
        "jax": jax.__version__,
        "device": jax.devices()[0].device_kind,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "environment": hostmem.state(),  # the studies' host allocator policy
        "load_average_start": os.getloadavg(),
    }
    try:
        import torch

        report["torch"] = torch.__version__
        report["torch_threads"] = torch_threads or torch.get_num_threads()
    except ImportError:
        no_torch = True
    log(
        f"reference net: small_cnn width {width}, batch {batch_size} of "
        f"{'×'.join(map(str, data.x_train.shape[1:]))}, S = {num_seeds}"
    )
    config = StudyConfig(
        dataset=dataset,
        model="small_cnn",
        width=width,
        num_seeds=num_seeds,
        epochs=1,
        batch_size=batch_size,
        strategy=strategy,
    )
    report["reference"] = throughput(config, data, num_seeds, rounds, not no_torch, torch_threads, log)
    if registry:
        report["registry"] = []
        for model, (model_width, batch) in REGISTRY_SIZES.items():
            log(f"{model} width {model_width}, batch {batch}, S = {num_seeds}")
            config = StudyConfig(
                dataset=dataset,
                model=model,
                width=model_width,
                num_seeds=num_seeds,
                epochs=1,
                batch_size=batch,
                strategy=strategy,
            )
            report["registry"].append(throughput(config, data, num_seeds, max(3, rounds // 2), False, None, log))
    if whole and not no_torch:
        log(f"whole study: {num_seeds} runs × {study_epochs} epoch(s) of {dataset}")
        best = report["reference"]["best_torch"] or ""
        threads = 1 if best.endswith(", 1 thread(s)") else torch_threads
        report["study"] = whole_study(
            dataset,
            num_seeds,
            study_epochs,
            batch_size,
            report["reference"]["chosen"],
            threads,
            log,
        )
    report["load_average_end"] = os.getloadavg()
    store.write_report(out, report)
    log(f"wrote {out}")
    return report


def main(argv) -> None:
    cli.reject_extra_args(argv)
    cli.run_or_exit(
        lambda: benchmark(
            dataset=_DATASET.value,
            num_seeds=_NUM_SEEDS.value,
            batch_size=_BATCH_SIZE.value,
            width=_WIDTH.value,
            rounds=_ROUNDS.value,
            no_torch=_NO_TORCH.value,
            torch_threads=_TORCH_THREADS.value,
            whole=_STUDY.value,
            study_epochs=_STUDY_EPOCHS.value,
            registry=_REGISTRY.value,
            out=_OUT.value,
            strategy=_STRATEGY.value,
        )
    )


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
