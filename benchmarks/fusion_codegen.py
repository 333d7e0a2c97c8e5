"""How XLA:CPU's elementwise code depends on an array's shape: GELU on the reference net's
activations.

The same 3.2 M-element GELU (the 28×28×16 layer at batch 256) is timed on its natural shape and
on reshaped views of the same buffer, plus the two later layers' shapes: the same arithmetic
costs 0.3 to 3.7 ns per element depending only on the view. The LLVM IR XLA dumps
(`XLA_FLAGS=--xla_dump_to=DIR`) shows why in the slow cases: on the natural shape the 16-wide
minor loop is unrolled and LLVM vectorises across the next dimension with element-by-element
loads and inserts; on the 128-wide view the reshape's index arithmetic (urem) keeps the loop
scalar. Evidence for the "Known limits" entry in BUILD_NOTES.md.

    PYTHONPATH=. python benchmarks/fusion_codegen.py          # add `taskset -c 0` for one core
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
from absl import app

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vmaptrain import cli, machine  # noqa: E402


def milliseconds(fn, x, calls: int = 20) -> float:
    for _ in range(3):
        jax.block_until_ready(fn(x))
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        jax.block_until_ready(fn(x))
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def benchmark() -> None:
    print(f"cpu: {machine.cpu_model()}", flush=True)
    layer0 = jax.random.normal(jax.random.key(0), (256, 28, 28, 16))
    views = [(256, 28, 28, 16), (-1, 16), (-1, 8), (-1, 64), (-1, 128), (-1,)]
    print("GELU (tanh form) on 256×28×28×16 floats, forward and gradient, by view shape:")
    for view in views:
        fwd = jax.jit(lambda x, v=view: jax.nn.gelu(x.reshape(v)))
        grad = jax.jit(lambda x, v=view: jax.grad(lambda y: jax.nn.gelu(y).sum())(x.reshape(v)))
        tanh = jax.jit(lambda x, v=view: jnp.tanh(x.reshape(v)))
        f, g, t = milliseconds(fwd, layer0), milliseconds(grad, layer0), milliseconds(tanh, layer0)
        print(
            f"  {str(view):20s} gelu {f:5.2f} ms ({1e6 * f / layer0.size:.2f} ns/element), "
            f"gradient {g:5.2f} ms, tanh alone {t:5.2f} ms"
        )
    print("GELU forward on each layer's natural shape:")
    for shape in [(256, 28, 28, 16), (256, 14, 14, 32), (256, 7, 7, 64)]:
        x = jax.random.normal(jax.random.key(1), shape)
        ms = milliseconds(jax.jit(jax.nn.gelu), x)
        print(f"  {str(shape):20s} {ms:5.2f} ms ({1e6 * ms / x.size:.2f} ns/element)")


def main(argv) -> None:
    cli.reject_extra_args(argv)
    cli.run_or_exit(benchmark)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
