"""Max-pool gradient A/B in the reference net's S-run training step on this machine.

`vmaptrain.models.layers.max_pool2` routes the gradient by a first-max index recorded in the
forward pass; the alternative is autodiff of a reshape + max (compare, count hits, divide,
broadcast in the backward pass), which it replaced. Both programs are built from the study's
own code (the autodiff pool is swapped into the model for one of them), timed round by round
interleaved (`autotune.time_programs`), for each strategy given.

    PYTHONPATH=. python benchmarks/pool_gradient.py --strategies unrolled+direct,unrolled+direct+eigen
"""

from __future__ import annotations

import argparse
import os
import sys

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vmaptrain import autotune, distributed, study  # noqa: E402
from vmaptrain.config import StudyConfig  # noqa: E402
from vmaptrain.data import load_dataset  # noqa: E402
from vmaptrain.models import small_cnn  # noqa: E402


def autodiff_max_pool2(x):
    b, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def stepper(config, spec, data, devices, strategy: str, pool):
    """A compiled S-run step of `strategy` with `pool` in the model (traced now, then restored)."""
    kept = small_cnn.max_pool2
    small_cnn.max_pool2 = pool
    try:
        study.programs_for.cache_clear()
        step = autotune.study_stepper(config, spec, data, devices, strategy, config.num_seeds)
        jax.block_until_ready(step())  # trace and compile while `pool` is in place
    finally:
        small_cnn.max_pool2 = kept
        study.programs_for.cache_clear()
    return step


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="idx:/usr/share/datasets/fashion-mnist")
    parser.add_argument("--strategies", default="unrolled+direct,unrolled+direct+eigen")
    parser.add_argument("--num_seeds", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args(argv)
    data = load_dataset(args.dataset)
    config = StudyConfig(
        dataset=args.dataset, model="small_cnn", num_seeds=args.num_seeds, epochs=1, batch_size=args.batch_size
    )
    spec = study.build_spec(config, data)
    devices = tuple(distributed.seed_mesh().devices.flat)
    for strategy in args.strategies.split(","):
        steps = {
            "autodiff pool": stepper(config, spec, data, devices, strategy, autodiff_max_pool2),
            "index pool": stepper(config, spec, data, devices, strategy, small_cnn.max_pool2),
        }
        seconds = autotune.time_programs(steps, rounds=args.rounds)
        per_model = {name: 1000 * s / args.num_seeds for name, s in seconds.items()}
        print(
            f"{strategy}: autodiff pool {per_model['autodiff pool']:.1f} ms per model-step, index pool "
            f"{per_model['index pool']:.1f} ({per_model['autodiff pool'] / per_model['index pool']:.2f}× faster)",
            flush=True,
        )


if __name__ == "__main__":
    main()
