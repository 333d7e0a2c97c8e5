"""Convolution kernels on XLA:CPU: YNNPACK (XLA's default) vs XLA's own Eigen kernels ("+eigen"),
per operation, for the reference net's two multi-channel layers; PyTorch (oneDNN) alongside if
installed. Run it under `taskset -c 0` too: YNNPACK's time barely changes with one core less.

    PYTHONPATH=. python benchmarks/conv_kernels.py [--batch=256] [--steps=30]
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from jax import lax

from vmaptrain import cli, machine  # noqa: E402
from vmaptrain.engine.programs import compile_options  # noqa: E402

_BATCH = flags.DEFINE_integer("batch", 256, "Examples per convolution call.", lower_bound=1)
_STEPS = flags.DEFINE_integer("steps", 30, "Timed calls per operation (the median is reported).", lower_bound=1)

LAYERS = ((14, 16, 32), (7, 32, 64))  # (spatial size, C_in, C_out) of conv1 and conv2
DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def conv(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DIMENSIONS)


OPERATIONS = {
    "forward": lambda x, w, dy: conv(x, w),
    "input grad": lambda x, w, dy: jax.vjp(lambda x: conv(x, w), x)[1](dy)[0],
    "weight grad": lambda x, w, dy: jax.vjp(lambda w: conv(x, w), w)[1](dy)[0],
}


def median_ms(fn, steps: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def torch_rows(batch: int, steps: int) -> list[str]:
    try:
        import torch
    except ImportError:
        return ["(torch not installed: no PyTorch row)"]
    rows = []
    for size, c_in, c_out in LAYERS:
        x = torch.randn(batch, c_in, size, size).contiguous(memory_format=torch.channels_last).requires_grad_()
        layer = torch.nn.Conv2d(c_in, c_out, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
        dy = torch.randn(batch, c_out, size, size).contiguous(memory_format=torch.channels_last)
        forward = median_ms(lambda: layer(x), steps)
        both = median_ms(lambda: torch.autograd.grad(layer(x), (x, layer.weight), dy), steps)
        rows.append(
            f"{size}×{size} {c_in}→{c_out}  pytorch ({torch.get_num_threads()} threads): forward "
            f"{forward:.2f} ms, forward + both gradients {both:.2f} ms"
        )
    return rows


def benchmark(batch: int, steps: int) -> None:
    print(f"cpu: {machine.cpu_model()}", flush=True)
    cpu = jax.devices("cpu")
    libraries = {
        "ynnpack": compile_options(cpu, "unrolled"),
        "eigen": compile_options(cpu, "unrolled+eigen"),
    }
    rng = np.random.default_rng(0)
    for size, c_in, c_out in LAYERS:
        x = jnp.asarray(rng.standard_normal((batch, size, size, c_in), np.float32))
        w = jnp.asarray(rng.standard_normal((3, 3, c_in, c_out), np.float32))
        dy = jnp.asarray(rng.standard_normal((batch, size, size, c_out), np.float32))
        gflop = 2 * batch * size * size * 9 * c_in * c_out / 1e9
        for name, op in OPERATIONS.items():
            cells = []
            for library, options in libraries.items():
                fn = jax.jit(op, compiler_options=options)
                ms = median_ms(lambda: jax.block_until_ready(fn(x, w, dy)), steps)
                cells.append(f"{library} {ms:5.2f} ms ({gflop / ms * 1000:4.0f} GFLOP/s)")
            print(f"{size}×{size} {c_in}→{c_out}  {name:11s}  " + "   ".join(cells), flush=True)
    for row in torch_rows(batch, steps):
        print(row)


def main(argv) -> None:
    cli.reject_extra_args(argv)
    cli.run_or_exit(lambda: benchmark(_BATCH.value, _STEPS.value))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
