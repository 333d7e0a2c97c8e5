"""XLA compile options that a strategy asks for (the "+eigen" strategy option).

XLA:CPU (jax 0.10.2) hands convolutions to YNNPACK, which runs each one on a single thread
(the same time on 1 and 2 cores). XLA's own Eigen kernels use the intra-op pool: on this
project's 2-core machine they compute the reference net's convolutions faster, the weight
gradients ~1.6× (BUILD_NOTES.md "Measured"); a reference-net step is 4–15% faster. For other
models and inside programs that already overlap several runs' single-threaded kernels they can
be slower, so this is a strategy option that "auto" times, not a default.

Options are per compiled program (`jax.jit(..., compiler_options=...)`), not process flags:
importing vmaptrain changes nothing else in the process, and a study's init, step and eval
programs are compiled with the same options.

Tried and not kept: `xla_cpu_prefer_vector_width=512` (3–4% faster, but a run's bits then
depend on how many runs share its program), oneDNN (`xla_cpu_use_onednn`, fusion types fail to
compile, the custom-call path changes nothing), XNNPACK graph fusion, `xla_cpu_multi_thread_eigen`.
"""

from __future__ import annotations

import functools

import jax

from vmaptrain import parallel

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


def for_devices(devices, strategy: str | None = None) -> dict:
    """The compile options for a program on `devices` built with `strategy`: on CPU, "+eigen"
    takes convolutions away from YNNPACK; otherwise XLA's defaults."""
    devices = list(devices)
    eigen = bool(strategy) and "eigen" in parallel.parse(strategy)[1]
    if not eigen or not devices or any(d.platform != "cpu" for d in devices):
        return {}
    return {_YNN_TYPES: _YNN_WITHOUT_CONVOLUTIONS} if _supported(_YNN_TYPES, _YNN_WITHOUT_CONVOLUTIONS) else {}
