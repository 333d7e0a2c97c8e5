"""Initialisation conventions and the optimizer step, against PyTorch's documented formulas.

* Every registry model's initial weights, over many draws, have the distribution PyTorch's
  `reset_parameters` gives its original (or the original's own explicit choice), layer by layer;
  the flax convention gives flax's defaults instead.
* Two training steps of every such model, from the same weights and batches, equal the
  `torch.optim.SGD` rule (parameter groups, coupled weight decay, momentum buffer, Nesterov)
  written out in numpy.
* The `init` field of a study: its values, and how a study reaches its model with it.

The expected values come from the formulas below, never from the code under test; PyTorch itself
is not needed. Statistical checks use a z-score of Z and tolerances derived from the number of
samples, so a correct initializer fails one with probability below 1e-6; the keys are fixed, so
the test is deterministic.
"""

from __future__ import annotations

import math

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vmaptrain import presets, train
from vmaptrain.config import StudyConfig, StudyError
from vmaptrain.data import load_dataset, normalize
from vmaptrain.data.dataset import build_dataset
from vmaptrain.engine import compilation_cache as engine_compilation_cache
from vmaptrain.models import INIT_CHOICES, REGISTRY, ModelError, conventions, declared_init, make_model
from vmaptrain.poke import never
from vmaptrain.specs import build_spec

Z = 5.0
TAIL = math.erfc(Z / math.sqrt(2))  # two-sided normal tail beyond Z: 5.7e-7
TORCH_MODELS = sorted(name for name in REGISTRY if declared_init(name) == "torch")
# Small widths keep the draws cheap; airbench94 at 0.25 still has random (non-Dirac) filters.
WIDTHS = {"small_cnn": 0.25, "resnet9_paper": 0.125, "resnet14_sd": 0.25, "airbench94": 0.25}
DRAWS = {"small_cnn": 256, "resnet9_paper": 64, "resnet14_sd": 128, "airbench94": 64}


@pytest.fixture(scope="module", autouse=True)
def compilation_cache():
    """The persistent compilation cache a study uses: a rerun loads these models' programs
    instead of compiling them again (most of this module's time)."""
    engine_compilation_cache.prepare()


@pytest.fixture(scope="module")
def digits32():
    """scikit-learn's digits with every pixel repeated 4×4: real 32×32 images, the size the
    CIFAR presets are built for (at 16×16, airbench94's last groups see 1×1 maps whose
    BatchNorm, with its eps of 1e-12, turns round-off into steps of 1e10)."""
    digits = load_dataset("digits")
    up = lambda x: np.repeat(np.repeat(x, 4, axis=1), 4, axis=2)
    return build_dataset("digits32", up(digits.x_train), digits.y_train, up(digits.x_test), digits.y_test)


def _normalised(data, count):
    return np.asarray(normalize(data.x_train[:count], data.mean, data.std))


@pytest.fixture(scope="module")
def draws(digits32):
    """draws(name, init) → {path: ([draws, ...] values, is a BatchNorm parameter)} of the initial
    params of `DRAWS[name]` independent inits (each (name, init) drawn once per module)."""
    cache = {}

    def draw(name: str, init: str) -> dict:
        if (name, init) not in cache:
            model = make_model(name, 10, WIDTHS[name], _normalised(digits32, 500), init)
            x = jnp.zeros((1,) + digits32.x_train.shape[1:], jnp.float32)
            keys = jax.random.split(jax.random.key(19), DRAWS[name])
            variables = jax.jit(jax.vmap(lambda key: model.init(key, x, train=False)))(keys)
            norm_modules = {path[:-1] for path in flax.traverse_util.flatten_dict(variables["batch_stats"])}
            params = flax.traverse_util.flatten_dict(variables["params"])
            cache[name, init] = {
                path: (np.asarray(value, np.float64), path[:-1] in norm_modules) for path, value in params.items()
            }
        return cache[name, init]

    return draw


# --- what PyTorch (or the original) draws ---------------------------------------------------------


def _fan_in(kernel_shape) -> int:
    """fan_in of an HWIO conv kernel (kh·kw·c_in) or an [in, out] dense kernel."""
    return int(np.prod(kernel_shape[:-1]))


def _expected(name: str, init: str, path: tuple, shape: tuple, params: dict, is_norm: bool):
    """The distribution of parameter `path` (per-draw `shape`) as (kind, value):
    ("uniform", bound), ("normal", std), ("flax_normal", std) or ("constant", value)."""
    module, leaf = "/".join(path[:-1]), path[-1]
    if is_norm:  # BatchNorm weight 1, bias 0 in both frameworks
        zero_scale = name == "resnet14_sd" and module.endswith("bn2")  # their last BN of a block
        return ("constant", 0.0 if zero_scale or leaf == "bias" else 1.0)
    if leaf == "kernel":
        if name == "resnet14_sd" and len(shape) == 4:  # kaiming_normal_(mode="fan_out", relu)
            return ("normal", math.sqrt(2.0 / (shape[0] * shape[1] * shape[3])))
        fan_in = _fan_in(shape)
        return ("uniform", 1.0 / math.sqrt(fan_in)) if init == "torch" else ("flax_normal", 1.0 / math.sqrt(fan_in))
    if module == "whiten":  # airbench zeroes the whitening conv's bias
        return ("constant", 0.0)
    kernel = params[path[:-1] + ("kernel",)][0]
    fan_in = _fan_in(kernel.shape[1:])
    return ("uniform", 1.0 / math.sqrt(fan_in)) if init == "torch" else ("constant", 0.0)


def _dirac_split(name: str, path: tuple, values: np.ndarray):
    """airbench94's 3×3 kernels: (random part, Dirac part) — output filter o < c_in is the identity."""
    if name != "airbench94" or path[-1] != "kernel" or values.ndim != 5:
        return values, None
    c_in, c_out = values.shape[3], values.shape[4]
    n = min(c_in, c_out)
    return values[..., n:], values[..., :n]


def _check_distribution(label: str, values: np.ndarray, kind: str, value: float) -> None:
    if kind == "constant":
        assert np.all(values == value), f"{label}: expected every value {value}"
        return
    n = values.size
    assert n >= 1000, f"{label}: only {n} samples"
    if kind == "uniform":  # U(±b): variance b²/3, fourth central moment b⁴/5
        bound = value
        variance, fourth = bound**2 / 3, bound**4 / 5
        assert np.abs(values).max() <= bound * (1 + 1e-6), f"{label}: a value outside ±{bound:.5g}"
        # The largest |value| of n uniform draws is below b(1 − δ) with probability (1 − δ)^n.
        reach = bound * (1 + math.log(TAIL) / n)
        assert np.abs(values).max() >= reach, f"{label}: values do not reach the bound ±{bound:.5g}"
    else:  # normal: fourth moment 3σ⁴; flax's truncated normal has less, so 3σ⁴ bounds it
        variance, fourth = value**2, 3 * value**4
        if kind == "flax_normal":  # lecun_normal: N(0, (σ/0.8796)²) truncated at ±2 of its std
            assert np.abs(values).max() <= 2 * value / 0.87962566103423978 * (1 + 1e-6), f"{label}: beyond ±2σ"
    mean_tol = Z * math.sqrt(variance / n)
    assert abs(values.mean()) <= mean_tol, f"{label}: mean {values.mean():.3g}, |mean| should be ≤ {mean_tol:.3g}"
    var_tol = Z * math.sqrt((fourth - variance**2) / n)
    got = values.var()
    assert abs(got - variance) <= var_tol, f"{label}: variance {got:.5g}, expected {variance:.5g} ± {var_tol:.2g}"


def test_every_registry_model_declares_a_convention_and_the_pytorch_originals_declare_torch():
    assert set(INIT_CHOICES) == {"model", "torch", "flax"}
    for name in REGISTRY:
        assert declared_init(name) in ("torch", "flax")
    # All four presets reproduce PyTorch trainings (docs/presets.md).
    assert TORCH_MODELS == sorted(REGISTRY)


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_initial_weights_follow_pytorchs_formulas_layer_by_layer(name, draws):
    params = draws(name, "model")
    for path, (values, is_norm) in params.items():
        label = f"{name} {'/'.join(path)}"
        kind, value = _expected(name, "torch", path, values.shape[1:], params, is_norm)
        random_part, dirac_part = _dirac_split(name, path, values)
        if dirac_part is not None:
            identity = np.zeros(dirac_part.shape[1:])
            n = identity.shape[-1]
            identity[1, 1, np.arange(n), np.arange(n)] = 1.0
            assert np.all(dirac_part == identity), f"{label}: the first c_in filters are not the identity"
        if random_part.size:
            _check_distribution(label, random_part, kind, value)


@pytest.mark.parametrize("name", ["small_cnn", "resnet14_sd"])
def test_the_flax_convention_gives_flax_defaults(name, draws):
    torch_params = draws(name, "model")  # both declare torch
    flax_params = draws(name, "flax")
    for path, (values, is_norm) in flax_params.items():
        label = f"{name} (flax) {'/'.join(path)}"
        kind, value = _expected(name, "flax", path, values.shape[1:], flax_params, is_norm)
        _check_distribution(label, values, kind, value)
    # The switch matters where flax and PyTorch differ: 3× the kernel variance, zero head bias.
    head = ("head", "kernel")
    ratio = flax_params[head][0].var() / torch_params[head][0].var()
    assert 2.5 < ratio < 3.5
    assert np.all(flax_params[("head", "bias")][0] == 0) and np.any(torch_params[("head", "bias")][0] != 0)


@pytest.mark.parametrize(
    "scale, mode, distribution, shape",
    [
        (1 / 3, "fan_in", "uniform", (5, 5, 16, 8)),
        (2.0, "fan_out", "normal", (3, 3, 32, 64)),
        (1.0, "fan_in", "truncated_normal", (24, 10)),
    ],
)
def test_flat_drawn_initializers_are_jaxs_bit_for_bit(scale, mode, distribution, shape):
    # What keeps resnet9_paper and airbench94 (torch), resnet14_sd's convs (Kaiming) and every
    # model under init="flax" (lecun_normal) on the weights jax's own initializers draw.
    key = jax.random.key(7)
    expected = jax.nn.initializers.variance_scaling(scale, mode, distribution)(key, shape)
    np.testing.assert_array_equal(conventions.variance_scaling(scale, mode, distribution)(key, shape), expected)


def test_init_values_are_validated():
    for init in INIT_CHOICES:
        assert StudyConfig(init=init).init == init
    with pytest.raises(StudyError, match="unknown init 'pytorch'; choose from model, torch, flax"):
        StudyConfig(init="pytorch")
    with pytest.raises(ModelError, match="unknown init 'lecun'"):
        make_model("small_cnn", 10, init="lecun")


def test_a_study_builds_its_model_with_the_configured_convention(digits32):
    for init, expected in (("model", "torch"), ("torch", "torch"), ("flax", "flax")):
        assert build_spec(StudyConfig(init=init), digits32).model.init_convention == expected


def test_a_config_saved_before_init_existed_reads_back_as_it_was_trained():
    # Those runs had flax's defaults where the model set no init of its own.
    for model, init in (("small_cnn", "flax"), ("resnet14_sd", "flax"), ("resnet9_paper", "model")):
        saved = StudyConfig(model=model).to_json()
        del saved["init"]
        assert StudyConfig.from_json(saved).init == init


# --- one optimizer step, against torch.optim.SGD ----------------------------------------------------


def _reference_sgd_step(params, grads, buffers, is_norm, lr, wd, momentum, nesterov, norm_lr, norm_wd):
    """torch.optim.SGD.step, per parameter group (BatchNorm parameters: lr·norm_lr, wd·norm_wd):

    d = g + wd·p                               (weight_decay: coupled, on every parameter)
    b = d on the first step, else μ·b + d      (dampening 0)
    u = d + μ·b if nesterov else b
    p = p − lr·u
    """
    new_params, new_buffers = {}, {}
    for path, p in params.items():
        group_lr = lr * (norm_lr if is_norm[path] else 1.0)
        group_wd = wd * (norm_wd if is_norm[path] else 1.0)
        d = grads[path] + group_wd * p
        b = d if buffers is None else momentum * buffers[path] + d
        u = d + momentum * b if nesterov else b
        new_params[path], new_buffers[path] = p - group_lr * u, b
    return new_params, new_buffers


def _loss(model, params, batch_stats, images, labels, label_smoothing):
    """torch.nn.CrossEntropyLoss(label_smoothing=ε), mean over the batch: targets (1 − ε)·onehot + ε/K."""
    logits, _ = model.apply({"params": params, "batch_stats": batch_stats}, images, train=True, mutable=["batch_stats"])
    k = logits.shape[-1]
    targets = (1 - label_smoothing) * jax.nn.one_hot(labels, k) + label_smoothing / k
    return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits), axis=-1))


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_two_training_steps_equal_pytorchs_sgd_rule(name, digits32):
    recipe = presets.recipe(name)
    batch = 64  # the update rule does not depend on the batch size; keeps the step cheap
    config = StudyConfig(**{**recipe, "dataset": "digits", "num_seeds": 1, "batch_size": batch, "width": WIDTHS[name]})
    spec = build_spec(config, digits32)
    images = jnp.asarray(_normalised(digits32, 2 * batch))
    labels = jnp.asarray(digits32.y_train[: 2 * batch], jnp.int32)
    batches = [(images[:batch], labels[:batch]), (images[batch:], labels[batch:])]
    hyper = train.Hyper(*(jnp.float32(config.per_run(f)[0]) for f in ("lr", "wd", "momentum", "label_smoothing")))
    key = jnp.asarray([0, 19], jnp.uint32)
    state = jax.jit(lambda: train.init_run(spec, key, key, key, hyper, never(), images[:batch]))()

    loss = lambda p, bs, x, y: _loss(spec.model, p, bs, x, y, config.label_smoothing)

    @jax.jit
    def step(state, batch):
        """vmaptrain's training step, and the gradient at the weights it started from."""
        return train.train_step(spec, state, batch)[0], jax.grad(loss)(state.params, state.batch_stats, *batch)

    flat = lambda tree: {k: np.asarray(v, np.float64) for k, v in flax.traverse_util.flatten_dict(tree).items()}
    norm_modules = {path[:-1] for path in flax.traverse_util.flatten_dict(state.batch_stats)}

    reference = flat(state.params)
    is_norm = {path: path[:-1] in norm_modules for path in reference}
    buffers = None
    for t, (x, y) in enumerate(batches):
        # The same gradient goes to both rules: jax's, at vmaptrain's current weights (equal to
        # the reference's up to round-off, checked below). The schedules have their own tests
        # (test_train.py), so the reference takes vmaptrain's lr factor.
        state, grads = step(state, (x, y))
        grads = flat(grads)
        lr_t = config.lr * float(spec.schedule.factor(t))
        before = reference
        reference, buffers = _reference_sgd_step(
            reference,
            grads,
            buffers,
            is_norm,
            lr_t,
            config.wd,
            config.momentum,
            config.optimizer == "nesterov",
            config.norm_lr_scale,
            config.norm_wd_scale,
        )
        got = flat(state.params)
        assert set(got) == set(reference)
        for path in reference:
            moved = np.abs(reference[path] - before[path]).max()
            # float32 round-off of weights and updates: a few ulps of the weights plus of the change.
            tolerance = 1e-6 * np.abs(before[path]).max() + 1e-5 * moved + 1e-9
            error = np.abs(got[path] - reference[path]).max()
            assert error <= tolerance, f"{name} step {t + 1} {'/'.join(path)}: off by {error:.3g} (moved {moved:.3g})"
        assert any(np.abs(reference[p] - before[p]).max() > 0 for p in reference)
