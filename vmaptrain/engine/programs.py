"""A study's compiled programs: init, training step, evaluation and data order, with runs
sharded over the devices of a seed mesh and batched inside each device by a `Strategy`.

Programs are cached by (spec, strategy, devices), so studies, autotune's candidates and the
figures that share a configuration share one compilation per process.

Compile options are per compiled program (`jax.jit(..., compiler_options=...)`), not process
flags: building programs changes nothing else in the process, except what is applied here
explicitly: JAX's persistent compilation cache (`compilation_cache.prepare`). The host allocator
policy must precede the CPU backend, so entry points apply it (`hostmem.prepare_process`).

"+eigen" (XLA:CPU, jax 0.10.2): YNNPACK runs each convolution on a single thread (the same time
on 1 and 2 cores); XLA's own Eigen kernels use the intra-op pool and on this project's 2-core
machine compute the reference net's convolutions faster, the weight gradients ~1.6×
(BUILD_NOTES.md "Measured"). For other models and inside programs that already overlap several
runs' single-threaded kernels they can be slower, so it is a strategy option that "auto" times.
Tried and not kept: `xla_cpu_prefer_vector_width=512` (3–4% faster, but a run's bits then
depend on how many runs share its program), oneDNN (`xla_cpu_use_onednn`, fusion types fail to
compile, the custom-call path changes nothing), XNNPACK graph fusion, `xla_cpu_multi_thread_eigen`.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from vmaptrain import train
from vmaptrain.engine import compilation_cache, hostmem, placement, seed_axis
from vmaptrain.engine.strategy import Strategy

_YNN_TYPES = "xla_cpu_experimental_ynn_fusion_type"
# XLA:CPU's default YNNPACK fusion types, less INDIVIDUAL_CONVOLUTION.
_YNN_WITHOUT_CONVOLUTIONS = "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"


@functools.cache
def _supported(name: str, value) -> bool:
    """Whether this XLA:CPU accepts the option (an unknown one fails compilation)."""
    probe = jax.device_put(1.0, jax.devices("cpu")[0])
    try:
        jax.jit(lambda x: x + 1, compiler_options={name: value}).lower(probe).compile()
    except Exception:  # noqa: BLE001 - any refusal means "not supported by this jaxlib"
        return False
    return True


def compile_options(devices, strategy: Strategy | str | None = None) -> dict:
    """The compile options for a program on `devices` built with `strategy`: on CPU, "+eigen"
    takes convolutions away from YNNPACK; otherwise XLA's defaults."""
    devices = list(devices)
    eigen = strategy is not None and Strategy.parse(strategy).has("eigen")
    if not eigen or not devices or any(d.platform != "cpu" for d in devices):
        return {}
    return {_YNN_TYPES: _YNN_WITHOUT_CONVOLUTIONS} if _supported(_YNN_TYPES, _YNN_WITHOUT_CONVOLUTIONS) else {}


class Programs:
    """The compiled programs of one (spec, strategy, mesh); runs sharded over `mesh`."""

    def __init__(self, spec: train.TrainSpec, strategy: Strategy | str, mesh: Mesh):
        strategy = Strategy.parse(strategy)
        self.spec, self.strategy, self.mesh = spec, strategy, mesh
        # Before anything here compiles: executables come from the persistent cache when they can.
        self.environment = {**compilation_cache.prepare(), **hostmem.state()}
        self.options = compile_options(mesh.devices.flat, strategy)
        runs, shared = P(placement.AXIS), P()

        def init_one(run, sample):
            init_key, order_key, aug_key, hyper, poke = run
            return train.init_run(spec, init_key, order_key, aug_key, hyper, poke, sample)

        def step_one(run, data, epoch, k):
            state, permutation = run
            return train.run_step(spec, state, data, permutation, epoch, k)

        step_local = seed_axis.map_runs(step_one, strategy)
        # Init holds no convolution worth batching: a loop over runs (`lax.map`), one body, so its
        # compile time does not grow with the runs (vmapped over 8 runs, the key derivations and
        # draws compiled 2.5× slower), with exactly the bits of one run at a time. Accelerators
        # vmap blocks of runs per iteration: a thousand tiny sequential iterations would idle them.
        block = None if mesh.devices.flat[0].platform == "cpu" else 64
        init_local = lambda stacked, sample: jax.lax.map(lambda run: init_one(run, sample), stacked, batch_size=block)
        self.init = jax.jit(self._shard(init_local, (runs, shared), runs), compiler_options=self.options)
        self.step = jax.jit(
            self._shard(
                lambda st, perms, data, e, k: step_local((st, perms), data, e, k),
                (runs, runs, shared, shared, shared),
                (runs, runs),
            ),
            donate_argnums=0,
            compiler_options=self.options,
        )
        self._eval = {}
        self._permutations = {}

    def _shard(self, fn, in_specs, out_specs):
        return jax.shard_map(fn, mesh=self.mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)

    def eval(self, state, images, tta: str | None = None):
        """Logits [runs, batch, classes] of every run on one normalised batch; `tta` (default:
        the spec's) is a static view set of `vmaptrain.tta`."""
        tta = self.spec.tta if tta is None else tta
        if tta not in self._eval:
            spec = self.spec if tta == self.spec.tta else _with_tta(self.spec, tta)
            local = seed_axis.map_runs(lambda st, x: train.eval_logits(spec, st, x), self.strategy)
            runs = P(placement.AXIS)
            self._eval[tta] = jax.jit(self._shard(local, (runs, P()), runs), compiler_options=self.options)
        return self._eval[tta](state, images)

    def permutations(self, order_keys, epoch, num_examples: int):
        """Every run's order of the training set in `epoch` [runs, num_examples]."""
        if num_examples not in self._permutations:
            perm = lambda keys, e: jax.vmap(train.epoch_permutation, in_axes=(0, None, None))(keys, e, num_examples)
            runs = P(placement.AXIS)
            self._permutations[num_examples] = jax.jit(self._shard(perm, (runs, P()), runs))
        return self._permutations[num_examples](order_keys, epoch)

    def step_hlo(self, state, permutations, data, epoch, k) -> str:
        return self.step.lower(state, permutations, data, epoch, k).compile().as_text()


def _with_tta(spec: train.TrainSpec, tta: str) -> train.TrainSpec:
    import dataclasses

    return dataclasses.replace(spec, tta=tta)


@functools.lru_cache(maxsize=32)
def _cached(spec: train.TrainSpec, strategy: Strategy, devices: tuple) -> Programs:
    return Programs(spec, strategy, Mesh(np.asarray(devices), (placement.AXIS,)))


def programs_for(spec: train.TrainSpec, strategy: Strategy | str, devices: tuple) -> Programs:
    """Studies with the same spec, strategy and devices share one compilation ("default" is
    resolved for the devices' platform first)."""
    devices = tuple(devices)
    return _cached(spec, Strategy.parse(strategy).for_platform(devices[0].platform), devices)


def clear_cache() -> None:
    """Forget every cached program (benchmarks that swap a model's code between measurements)."""
    _cached.cache_clear()
