"""Every seed-parallel strategy computes what a Python loop of single-run steps computes, and
`auto` picks the strategy its measurements say is fastest.

What "the same" means, per strategy:
- "unrolled", "serial": bitwise the loop's logits (each run is the single-run program).
- everything else (vmapped forms, lax.map, the conv/pool kernel options): float rounding
  differs (grouped vs dense convolutions, other summation orders, other fusions), so ≥ 99.9 %
  identical test predictions and logits within a small tolerance after a few training steps.
Tiny width, 8×8 digits and a few steps keep the file well under a minute and a half on 2 cores.
"""

from __future__ import annotations

import ctypes
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from vmaptrain import autotune, train
from vmaptrain.config import StudyConfig, StudyError
from vmaptrain.data import load_dataset, normalize
from vmaptrain.engine import conv_batching, hostmem, seed_axis
from vmaptrain.engine.programs import compile_options
from vmaptrain.engine.strategy import Strategy
from vmaptrain.engine.trainer import device_data, run_inputs
from vmaptrain.specs import build_spec
from vmaptrain.study import SeedStudy

RUNS, STEPS = 2, 3


@pytest.fixture(scope="module")
def setup():
    config = StudyConfig(
        dataset="digits", model="small_cnn", width=0.25, num_seeds=RUNS, epochs=1, batch_size=32, lr=0.05
    )
    data = load_dataset("digits")
    spec = build_spec(config, data)
    _, inputs = run_inputs(config, list(range(RUNS)))
    sample = jnp.zeros((1,) + data.x_train.shape[1:], jnp.float32)
    states = jax.jit(jax.vmap(lambda run: train.init_run(spec, *run, sample)))(inputs)
    dev = jax.tree.map(jnp.asarray, device_data(data))
    perms = jax.vmap(train.epoch_permutation, in_axes=(0, None, None))(states.order_key, 0, len(data.y_train))
    x_test = normalize(data.x_test, data.mean, data.std)
    return spec, states, dev, perms, x_test


def _options(strategy):
    """The compile options a study's programs get with `strategy` (engine.programs.compile_options)."""
    return compile_options(jax.devices()[:1], strategy)


def _loop_logits(spec, states, dev, perms, x_test):
    """The reference: a Python loop over runs of a jitted single-run step."""
    step = jax.jit(lambda s, p, k: train.run_step(spec, s, dev, p, 0, k)[0])
    evaluate = jax.jit(lambda s: train.eval_logits(spec, s, x_test))
    logits = []
    for r in range(RUNS):
        state, perm = seed_axis.unstack(states, r), perms[r]
        for k in range(STEPS):
            state = step(state, perm, k)
        logits.append(evaluate(state))
    return np.stack(logits)


def _strategy_logits(strategy, spec, states, dev, perms, x_test):
    step_all = seed_axis.map_runs(lambda run, k: train.run_step(spec, run[0], dev, run[1], 0, k), strategy)
    step = jax.jit(lambda s, p, k: step_all((s, p), k)[0], compiler_options=_options(strategy))
    evaluate = jax.jit(
        seed_axis.map_runs(lambda s, x: train.eval_logits(spec, s, x), strategy), compiler_options=_options(strategy)
    )
    for k in range(STEPS):
        states = step(states, perms, k)
    return np.asarray(evaluate(states, x_test))


@pytest.fixture(scope="module")
def loop(setup):
    return _loop_logits(*setup)


@pytest.mark.parametrize("strategy", ["unrolled", "serial"])
def test_dense_strategies_are_bitwise_the_loop(setup, loop, strategy):
    np.testing.assert_array_equal(_strategy_logits(strategy, *setup), loop)


# Plain "vmap" and "chunk:K" are compared with "unrolled" in test_parallel.py (and "unrolled" is
# bitwise the loop, above); "map:1" is lax.map's loop, "vmap+perrun+direct" the CPU candidate
# with per-run convolutions inside vmap and the direct first-layer convolution; "+eigen" the
# CPU candidates whose convolutions are XLA's own kernels instead of YNNPACK's.
@pytest.mark.parametrize(
    "strategy",
    [
        "map:1",
        "unrolled+direct",
        "vmap+direct",
        "vmap+bmm",
        "vmap+perrun+direct",
        "unrolled+eigen",
        "unrolled+direct+eigen",
        "serial+direct+eigen",
    ],
)
def test_other_strategies_agree_with_the_loop(setup, loop, strategy):
    logits = _strategy_logits(strategy, *setup)
    same = (logits.argmax(-1) == loop.argmax(-1)).mean()
    assert same >= 0.999, f"{strategy}: only {same:.4%} identical predictions"
    np.testing.assert_allclose(logits, loop, atol=2e-3, rtol=1e-3)


def test_bf16_convolutions_train_and_keep_float32_state(setup, loop):
    logits = _strategy_logits("vmap+bf16", *setup)
    assert logits.dtype == np.float32 and np.isfinite(logits).all()
    assert (logits.argmax(-1) == loop.argmax(-1)).mean() >= 0.9  # bf16 rounding: close, not equal


# --- kernels -------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["unrolled+direct", "vmap+perrun+direct"])
def test_routed_training_gradients_of_the_28x28_reference_net_are_autodiffs(strategy):
    # Regression: a hand-written pool backward once made these infinite at the 7×7 layer
    # (the reference net then never trained under "+direct"); 8×8 digits did not show it.
    from vmaptrain.models.small_cnn import SmallCNN

    model = SmallCNN(10, 0.5)
    x = jax.random.normal(jax.random.key(0), (16, 28, 28, 1))
    y = jax.random.randint(jax.random.key(1), (16,), 0, 10)
    variables = model.init(jax.random.key(2), x, train=False)

    def loss(params):
        out, _ = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
        return -jax.nn.log_softmax(out)[jnp.arange(16), y].mean()

    def routed(params):
        with conv_batching.routing(seed_axis.conv_routing(Strategy.parse(strategy))):
            return loss(params)

    want = jax.jit(jax.grad(loss))(variables["params"])
    got = jax.jit(jax.grad(routed))(variables["params"])
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
        assert np.isfinite(np.asarray(b)).all()
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


SAME_3x3 = ((3, 3, 2, 4), 1, ((1, 1), (1, 1)))
STRIDED_5x5 = ((5, 5, 1, 3), 2, ((2, 2), (1, 2)))  # stride 2, asymmetric padding


@pytest.mark.parametrize(
    "per_run,across,layer",
    [
        ("direct", "grouped", SAME_3x3),
        ("direct", "per_run", STRIDED_5x5),
        ("im2col", "per_run", SAME_3x3),
        ("xla", "per_run", STRIDED_5x5),
        ("xla", "bmm", SAME_3x3),
        ("xla", "grouped", STRIDED_5x5),
    ],
)
def test_routed_convolution_and_its_gradients_match_xla(per_run, across, layer):
    kernel, stride, pad = layer
    x = jax.random.normal(jax.random.key(2), (2, 3, 9, 9, kernel[2]))  # 2 runs
    w = jax.random.normal(jax.random.key(3), (2,) + kernel)
    strides = (stride, stride)
    fn = conv_batching.conv_function(conv_batching.Routing(per_run, across), kernel, strides, pad)
    plain = lambda x, w: lax.conv_general_dilated(x, w, strides, pad, dimension_numbers=("NHWC", "HWIO", "NHWC"))

    @jax.jit
    def outputs_and_grads(x, w):
        return [
            (jax.vmap(conv)(x, w), jax.grad(lambda x, w: (jax.vmap(conv)(x, w) ** 2).sum(), (0, 1))(x, w))
            for conv in (fn, plain)
        ]

    (y, grads), (y_want, grads_want) = outputs_and_grads(x, w)
    np.testing.assert_allclose(y, y_want, rtol=1e-4, atol=1e-4)
    for got, want in zip(grads, grads_want):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_host_allocator_keeps_freed_memory_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        return
    assert hostmem.keep_freed_memory()  # applied explicitly (CPU programs do it too); idempotent
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2"):  # glibc < 2.33
        return

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in (
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            )
        ]

    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    # A free block past mallopt's largest positive trim threshold (2 GiB) at the top of the heap
    # is still kept (never touched: address space only). A trim here would cost the next program
    # as many page faults as it uses bytes.
    block = libc.malloc((2 << 30) + (256 << 20))
    assert block
    grown = libc.mallinfo2().arena
    libc.free(block)
    assert libc.mallinfo2().arena == grown


# --- names ---------------------------------------------------------------------------------------


def test_strategy_grammar():
    for good in (
        "auto",
        "vmap+direct",
        "chunk:4+perrun+direct",
        "map",
        "map:2+bmm",
        "serial",
        "vmap+bf16",
        "unrolled+direct+eigen",
    ):
        assert str(Strategy.parse(good)) == good
    for bad in (
        "pmap",
        "vmap+perrun+bmm",
        "vmap+direct+direct",
        "map:0",
        "unrolled+fast",
        "auto+direct",
        "unrolled+eigen+eigen",
    ):
        with pytest.raises(ValueError, match="unknown strategy"):
            str(Strategy.parse(bad))
    with pytest.raises(StudyError, match="unknown strategy"):
        StudyConfig(strategy="fastest")
    with pytest.raises(ValueError, match="must be resolved"):
        seed_axis.map_runs(lambda r: r, "auto")
    assert Strategy.parse("map:2+direct").chunk_size(5) == 2 and Strategy.parse("serial").chunk_size(5) == 1
    assert seed_axis.conv_routing(Strategy.parse("vmap")) is None
    assert seed_axis.conv_routing(Strategy.parse("unrolled+eigen")) is None  # a compile option, not a routing
    many, single = autotune.candidates_for("cpu", 8), autotune.candidates_for("cpu", 1)
    assert {"serial+direct", "unrolled+direct+eigen", "serial+direct+eigen"} <= set(many)
    assert set(single) == {"unrolled", "unrolled+direct", "unrolled+eigen", "unrolled+direct+eigen"}
    assert all(str(Strategy.parse(c)) == c for c in many + single + autotune.candidates_for("gpu", 8))


def test_eigen_option_takes_convolutions_away_from_ynnpack():
    conv = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    x, w = jnp.ones((4, 8, 8, 3)), jnp.ones((3, 3, 3, 5))
    plain, eigen = _options("unrolled"), _options("unrolled+eigen")
    assert "xla_cpu_experimental_ynn_fusion_type" not in plain
    hlo = lambda options: jax.jit(conv, compiler_options=options).lower(x, w).compile().as_text()
    if "ynn_fusion" in hlo(plain):  # this XLA gives convolutions to YNNPACK by default (jax 0.10.2 does)
        assert "xla_cpu_experimental_ynn_fusion_type" in eigen
        assert "ynn_fusion" not in hlo(eigen) and "convolution(" in hlo(eigen)
    np.testing.assert_allclose(jax.jit(conv, compiler_options=eigen)(x, w), jax.jit(conv)(x, w), rtol=1e-6)
    assert compile_options([], "unrolled+eigen") == {}


# --- auto ----------------------------------------------------------------------------------------


def test_auto_picks_the_argmin_and_caches_it(tmp_path):
    path = str(tmp_path / "autotune.json")
    fake = {"a": 0.3, "b": 0.1, "c": 0.2}
    calls = []

    def measure(candidate):
        calls.append(candidate)
        if candidate == "d":
            raise MemoryError("out of memory")
        return fake[candidate]

    choice, entry = autotune.choose("key", ["a", "b", "c", "d"], measure, path)
    assert choice == "b" and calls == ["a", "b", "c", "d"]
    cached = json.load(open(path))["key"]
    assert cached["choice"] == min(cached["seconds_per_step"], key=cached["seconds_per_step"].get) == "b"
    assert cached["seconds_per_step"] == fake and "d" in cached["failed"]
    # The second time nothing is measured; refresh measures again.
    assert autotune.choose("key", ["a", "b", "c", "d"], lambda c: 1 / 0, path)[0] == "b"
    fake["a"] = 0.01
    assert autotune.choose("key", ["a", "b", "c"], measure, path, refresh=True)[0] == "a"


def test_auto_study_times_the_candidates_and_trains_with_the_fastest(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VMAPTRAIN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("VMAPTRAIN_AUTO_CANDIDATES", "unrolled,vmap+direct")
    # One run (no estimator report to compute); the candidate list is forced, so both are timed.
    config = dict(dataset="digits", model="small_cnn", width=0.25, num_seeds=1, epochs=1, batch_size=128)
    result = SeedStudy(**config, strategy="auto").run(progress=False)
    cache = json.load(open(tmp_path / "autotune.json"))
    ((key, entry),) = cache.items()
    assert json.loads(key)["candidates"] == ["unrolled", "vmap+direct"]
    timings = entry["seconds_per_step"]
    assert set(timings) == {"unrolled", "vmap+direct"} and all(t > 0 for t in timings.values())
    assert entry["choice"] == min(timings, key=timings.get)
    assert f"strategy auto → {entry['choice']} (measured" in capsys.readouterr().err
    assert result.summary["accuracy_mean"] > 0.3  # it trained (1 epoch of digits)
