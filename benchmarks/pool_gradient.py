"""Max-pool gradient A/B in the reference net's S-run training step on this machine.

`vmaptrain.models.layers.max_pool2` routes the gradient by a first-max index recorded in the
forward pass; the alternative is autodiff of a reshape + max (compare, count hits, divide,
broadcast in the backward pass), which it replaced. Both programs are built from the study's
own code (the autodiff pool is swapped into the model for one of them), timed round by round
interleaved (`autotune.time_programs`), for each strategy given.

    PYTHONPATH=. python benchmarks/pool_gradient.py --strategies=unrolled+direct,unrolled+direct+eigen
"""

from __future__ import annotations

import os
import sys

import jax
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vmaptrain import autotune, cli, machine, specs  # noqa: E402
from vmaptrain.config import StudyConfig  # noqa: E402
from vmaptrain.data import load_dataset  # noqa: E402
from vmaptrain.engine import placement, programs  # noqa: E402
from vmaptrain.engine.strategy import Strategy  # noqa: E402
from vmaptrain.models import small_cnn  # noqa: E402


def _strategies_ok(text: str) -> bool:
    """Every comma-separated entry is a concrete strategy ("auto" is not one: both pools are
    timed under each strategy given)."""
    for part in text.split(","):
        try:
            strategy = Strategy.parse(part.strip())
        except ValueError as err:
            raise flags.ValidationError(str(err)) from None
        if strategy.is_auto:
            raise flags.ValidationError("give concrete strategies, not auto")
    return True


_DATASET = flags.DEFINE_string("dataset", "idx:/usr/share/datasets/fashion-mnist", "vmaptrain dataset string")
_STRATEGIES = flags.DEFINE_string(
    "strategies", "unrolled+direct,unrolled+direct+eigen", "Comma-separated strategies to compare the pools under"
)
_NUM_SEEDS = flags.DEFINE_integer("num_seeds", 8, "S, runs per program", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Batch size of the reference net", lower_bound=1)
_ROUNDS = flags.DEFINE_integer("rounds", 8, "Timed rounds per program (median reported)", lower_bound=1)
flags.register_validator("strategies", _strategies_ok)


def autodiff_max_pool2(x):
    b, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def stepper(config, spec, data, devices, strategy: str, pool):
    """A compiled S-run step of `strategy` with `pool` in the model (traced now, then restored)."""
    kept = small_cnn.max_pool2
    small_cnn.max_pool2 = pool
    try:
        programs.clear_cache()
        step = autotune.study_stepper(config, spec, data, devices, strategy, config.num_seeds)
        jax.block_until_ready(step())  # trace and compile while `pool` is in place
    finally:
        small_cnn.max_pool2 = kept
        programs.clear_cache()
    return step


def benchmark(dataset: str, strategies: list[str], num_seeds: int, batch_size: int, rounds: int) -> None:
    print(f"cpu: {machine.cpu_model()}", flush=True)
    data = load_dataset(dataset)
    config = StudyConfig(dataset=dataset, model="small_cnn", num_seeds=num_seeds, epochs=1, batch_size=batch_size)
    spec = specs.build_spec(config, data)
    specs.check_model(spec, data)
    devices = tuple(placement.seed_mesh().devices.flat)
    for strategy in strategies:
        steps = {
            "autodiff pool": stepper(config, spec, data, devices, strategy, autodiff_max_pool2),
            "index pool": stepper(config, spec, data, devices, strategy, small_cnn.max_pool2),
        }
        seconds = autotune.time_programs(steps, rounds=rounds)
        per_model = {name: 1000 * s / num_seeds for name, s in seconds.items()}
        print(
            f"{strategy}: autodiff pool {per_model['autodiff pool']:.1f} ms per model-step, index pool "
            f"{per_model['index pool']:.1f} ({per_model['autodiff pool'] / per_model['index pool']:.2f}× faster)",
            flush=True,
        )


def main(argv) -> None:
    cli.reject_extra_args(argv)
    strategies = [s.strip() for s in _STRATEGIES.value.split(",")]
    cli.run_or_exit(lambda: benchmark(_DATASET.value, strategies, _NUM_SEEDS.value, _BATCH_SIZE.value, _ROUNDS.value))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
