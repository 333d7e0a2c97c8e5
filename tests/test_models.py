import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vmaptrain.models import REGISTRY, ModelError, make_model

SHAPES = {
    "small_cnn": (2, 28, 28, 1),
    "resnet14_sd": (2, 32, 32, 3),
    "resnet9_paper": (2, 32, 32, 3),
    "airbench94": (2, 32, 32, 3),
}


def _init(name, width=1.0, shape=None):
    x = jnp.ones(shape or SHAPES[name])
    # airbench94's whitening comes from training images; any will do for shapes.
    images = np.random.default_rng(0).standard_normal((16,) + x.shape[1:])
    model = make_model(name, 10, width, images)
    return model, model.init(jax.random.key(0), x, train=False), x


def _count(tree):
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_model_maps_images_to_class_logits(name):
    model, variables, x = _init(name)
    logits = model.apply(variables, x, train=False)
    assert logits.shape == (2, 10)
    assert np.all(np.isfinite(np.asarray(logits)))
    out, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    assert out.shape == (2, 10) and "batch_stats" in updates


def test_small_cnn_is_the_reference_net():
    _, variables, _ = _init("small_cnn")
    params = flax.traverse_util.flatten_dict(variables["params"])
    kernels = {"/".join(k): v.shape for k, v in params.items() if k[-1] == "kernel"}
    assert kernels == {
        "conv0/kernel": (3, 3, 1, 16),
        "conv1/kernel": (3, 3, 16, 32),
        "conv2/kernel": (3, 3, 32, 64),
        "head/kernel": (64, 10),
    }
    assert set(variables["batch_stats"]) == {"bn0", "bn1", "bn2"}


def test_resnet9_paper_has_the_papers_parameter_count():
    # 2,274,880 parameters including BN affine, counted from ffcv-cifar's layer list (docs/presets.md).
    _, variables, _ = _init("resnet9_paper")
    assert _count(variables["params"]) == 2_274_880


def test_width_multiplier_scales_channels():
    _, half, _ = _init("resnet14_sd", width=0.5)
    assert half["params"]["stem_conv"]["kernel"].shape == (3, 3, 3, 8)
    _, double, _ = _init("resnet14_sd", width=2.0)
    assert double["params"]["stage2_block1"]["conv2"]["kernel"].shape == (3, 3, 128, 128)


def test_resnet14_last_bn_of_each_block_starts_at_zero():
    _, variables, _ = _init("resnet14_sd")
    for name, block in variables["params"].items():
        if name.startswith("stage"):
            assert np.all(np.asarray(block["bn2"]["scale"]) == 0)


def test_batchnorm_statistics_stay_per_run_under_vmap():
    model, variables, _ = _init("small_cnn")
    stacked = jax.tree.map(lambda a: jnp.stack([a, a]), variables)
    x = jax.random.normal(jax.random.key(1), (2, 4, 28, 28, 1)) * jnp.array([1.0, 3.0])[:, None, None, None, None]

    def train_apply(v, xb):
        return model.apply(v, xb, train=True, mutable=["batch_stats"])[1]["batch_stats"]

    together = jax.vmap(train_apply)(stacked, x)
    for run in range(2):
        alone = train_apply(variables, x[run])
        jax.tree.map(lambda t, a: np.testing.assert_allclose(t[run], a, rtol=1e-5, atol=1e-6), together, alone)
    assert not np.allclose(together["bn0"]["var"][0], together["bn0"]["var"][1])


def test_bad_models_are_refused():
    with pytest.raises(ModelError, match="unknown model 'resnet1000'"):
        make_model("resnet1000", 10)
    with pytest.raises(ModelError, match="width"):
        make_model("small_cnn", 10, width=0)
    model = make_model("resnet9_paper", 10)
    with pytest.raises(ValueError, match="at least 12×12"):
        model.init(jax.random.key(0), jnp.ones((1, 8, 8, 1)), train=False)


def _reshape_max_pool(x):
    b, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


@pytest.mark.parametrize("shape", [(3, 8, 8, 5), (2, 7, 7, 4), (1, 5, 6, 3)])
def test_max_pool_routes_the_gradient_like_autodiff_without_ties(shape):
    from vmaptrain.models.layers import max_pool2

    x = jax.random.normal(jax.random.key(0), shape)
    dy = jax.random.normal(jax.random.key(1), _reshape_max_pool(x).shape)
    np.testing.assert_array_equal(max_pool2(x), _reshape_max_pool(x))
    got = jax.vjp(max_pool2, x)[1](dy)[0]
    np.testing.assert_array_equal(got, jax.vjp(_reshape_max_pool, x)[1](dy)[0])  # odd edges get 0
    batched = jax.vmap(lambda x, dy: jax.vjp(max_pool2, x)[1](dy)[0])(jnp.stack([x, -x]), jnp.stack([dy, dy]))
    np.testing.assert_array_equal(batched[0], got)


def test_max_pool_ties_go_to_the_first_maximum_and_nan_wins():
    from vmaptrain.models.layers import max_pool2

    grad = jax.grad(lambda x: max_pool2(x).sum())
    ties = jnp.array([[0.0, 2.0], [2.0, 2.0]]).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(grad(ties)[0, :, :, 0], [[0, 1], [0, 0]])  # PyTorch's choice
    with_nan = jnp.array([[1.0, 3.0], [jnp.nan, 2.0]]).reshape(1, 2, 2, 1)
    assert np.isnan(max_pool2(with_nan)).all()
    np.testing.assert_array_equal(grad(with_nan)[0, :, :, 0], [[0, 0], [1, 0]])
    # Every window routes its gradient to exactly one element, also when XLA fuses the pool
    # with the activation that feeds it.
    x = jax.random.normal(jax.random.key(2), (4, 28, 28, 16))
    g = jax.jit(jax.grad(lambda x: max_pool2(jax.nn.gelu(x)).sum()))(x).reshape(4, 14, 2, 14, 2, 16)
    np.testing.assert_array_equal((g != 0).sum(axis=(2, 4)), 1)
